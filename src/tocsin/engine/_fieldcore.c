/* `Field.redraw` and the array step of `RegionRules._decide_many`, each in one pass: the
   optional compiled half of `tocsin.engine.field` and `tocsin.engine.rules`.

   They write the same numbers into the same numpy arrays as the pure code, decision for
   decision: the arithmetic is that code's own single IEEE steps, built with floating-point
   contraction off, and every choice is a comparison. See `Field.redraw` and `_decide_many` for
   what the arrays hold; the caller makes `order` current first. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    Py_buffer view;
    int held;
} Buf;

static int get(PyObject *obj, Buf *b, const char *kinds, int writable, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0)
        return -1;
    b->held = 1;
    const char *f = b->view.format;
    Py_ssize_t size = strchr("?b", kinds[0]) != NULL ? 1 : 8;
    if (b->view.itemsize != size || f == NULL || f[0] == '\0' || strchr(kinds, f[0]) == NULL) {
        PyErr_Format(PyExc_ValueError, "%s: expected items of kind %s", name, kinds);
        return -1;
    }
    return 0;
}

static void release(Buf *bufs, int n)
{
    for (int i = 0; i < n; i++)
        if (bufs[i].held)
            PyBuffer_Release(&bufs[i].view);
}

/* Every buffer argument, checked by name; on failure all are released and the error is set. */
static int get_all(PyObject *const *args, Buf *b, int n, const char *const *names,
                   const char *const *kinds, const int *writes)
{
    memset(b, 0, sizeof(Buf) * (size_t)n);
    for (int i = 0; i < n; i++) {
        if (get(args[i], &b[i], kinds[i], writes[i], names[i]) < 0) {
            release(b, n);
            return -1;
        }
    }
    return 0;
}

enum { ETA, T_S, OFF, MIN_A, ARG_A, MIN_B, ARG_B, ORDER, OLD, NEW, VALS, NBUF };

/* Minimum of one leaf's row over the live slots, and the slot giving it: the smaller id (by
   `order`) on a tie, -1 for an empty row; for arrivals (`alert` 0) or alert points (1). */
static void first(const double *row, const double *t_s, const double *off, const Py_ssize_t *order,
                  Py_ssize_t used, int alert, double *low, Py_ssize_t *arg)
{
    double best = INFINITY;
    Py_ssize_t at = -1;
    for (Py_ssize_t s = 0; s < used; s++) {
        double v = row[s] + t_s[s];
        if (alert)
            v = v - off[s];
        if (v < best || (v == best && at >= 0 && order[s] < order[at])) {
            best = v;
            at = s;
        }
    }
    *low = best;
    *arg = (best == INFINITY) ? -1 : at;
}

/* redraw(eta, t_s, off, min_a, arg_a, min_b, arg_b, order, old, new, vals, slot, used, t, off)
   -> bytearray of the sorted leaves (intp) whose deciding arrival or alert point moved. */
static PyObject *redraw(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != NBUF + 4) {
        PyErr_SetString(PyExc_TypeError, "redraw takes 15 arguments");
        return NULL;
    }
    static const char *names[NBUF] = {"eta", "t_s", "off", "min_a", "arg_a", "min_b", "arg_b",
                                      "order", "old", "new", "vals"};
    static const char *kinds[NBUF] = {"d", "d", "d", "d", "lq", "d", "lq", "lq", "lq", "lq", "d"};
    static const int writes[NBUF] = {1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0};
    Buf b[NBUF];
    if (get_all(args, b, NBUF, names, kinds, writes) < 0)
        return NULL;
    Py_ssize_t slot = PyLong_AsSsize_t(args[NBUF]);
    Py_ssize_t used = PyLong_AsSsize_t(args[NBUF + 1]);
    double t = PyFloat_AsDouble(args[NBUF + 2]);
    double off_val = PyFloat_AsDouble(args[NBUF + 3]);
    if (PyErr_Occurred()) {
        release(b, NBUF);
        return NULL;
    }
    Py_ssize_t leaves = b[MIN_A].view.len / 8;
    Py_ssize_t cap = leaves ? b[ETA].view.len / 8 / leaves : 0;
    Py_ssize_t nold = b[OLD].view.len / 8, nnew = b[NEW].view.len / 8;
    const Py_ssize_t *old = b[OLD].view.buf, *new = b[NEW].view.buf;
    int ok = cap * leaves * 8 == b[ETA].view.len && slot >= 0 && slot < used && used <= cap &&
             b[T_S].view.len >= cap * 8 && b[OFF].view.len >= cap * 8 &&
             b[ORDER].view.len >= cap * 8 && b[VALS].view.len == nnew * 8 &&
             b[ARG_A].view.len == leaves * 8 && b[MIN_B].view.len == leaves * 8 &&
             b[ARG_B].view.len == leaves * 8;
    for (Py_ssize_t i = 0; ok && i < nold; i++)
        ok = old[i] >= 0 && old[i] < leaves && (i == 0 || old[i] > old[i - 1]);
    for (Py_ssize_t i = 0; ok && i < nnew; i++)
        ok = new[i] >= 0 && new[i] < leaves && (i == 0 || new[i] > new[i - 1]);
    if (!ok) {
        release(b, NBUF);
        PyErr_SetString(PyExc_ValueError, "redraw: arrays of mismatched sizes, or leaves that "
                                          "are out of range or not ascending");
        return NULL;
    }
    PyObject *out = PyByteArray_FromStringAndSize(NULL, (nold + nnew) * 8);
    if (out == NULL) {
        release(b, NBUF);
        return NULL;
    }
    Py_ssize_t *moved = (Py_ssize_t *)PyByteArray_AS_STRING(out);
    Py_ssize_t *lost = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(nold ? nold : 1));
    if (lost == NULL) {
        Py_DECREF(out);
        release(b, NBUF);
        return PyErr_NoMemory();
    }
    double *eta = b[ETA].view.buf, *min_a = b[MIN_A].view.buf, *min_b = b[MIN_B].view.buf;
    Py_ssize_t *arg_a = b[ARG_A].view.buf, *arg_b = b[ARG_B].view.buf;
    const double *t_s = b[T_S].view.buf, *off = b[OFF].view.buf, *vals = b[VALS].view.buf;
    const Py_ssize_t *order = b[ORDER].view.buf;
    Py_ssize_t nlost = 0, nmoved = 0;

    /* where the track gave a minimum, it is found again once its column is written */
    for (Py_ssize_t i = 0; i < nold; i++) {
        Py_ssize_t p = old[i];
        if (arg_a[p] == slot || arg_b[p] == slot)
            lost[nlost++] = p;
        eta[p * cap + slot] = INFINITY;
    }
    for (Py_ssize_t i = 0; i < nnew; i++)
        eta[new[i] * cap + slot] = vals[i];
    /* the new leaves, against the cached minima (those searched again anyway skipped) */
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < nnew; i++) {
        Py_ssize_t p = new[i];
        while (k < nlost && lost[k] < p)
            k++;
        if (k < nlost && lost[k] == p)
            continue;
        double arrival = t + vals[i];
        double alert = arrival - off_val;
        double ma = min_a[p], mb = min_b[p];
        Py_ssize_t aa = arg_a[p], ab = arg_b[p];
        /* as numpy indexes it, -1 is the last slot */
        int better_a = arrival < ma || (arrival == ma && order[slot] < order[aa >= 0 ? aa : cap - 1]);
        int better_b = alert < mb || (alert == mb && order[slot] < order[ab >= 0 ? ab : cap - 1]);
        if (better_a) {
            min_a[p] = arrival;
            arg_a[p] = slot;
        }
        if (better_b) {
            min_b[p] = alert;
            arg_b[p] = slot;
        }
        if (better_a || better_b)
            moved[nmoved++] = p;
    }
    for (Py_ssize_t i = 0; i < nlost; i++) {
        Py_ssize_t p = lost[i];
        const double *row = eta + p * cap;
        first(row, t_s, off, order, used, 0, &min_a[p], &arg_a[p]);
        first(row, t_s, off, order, used, 1, &min_b[p], &arg_b[p]);
    }
    /* both runs ascend and share no leaf: merge them */
    Py_ssize_t *merged = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(nmoved + nlost + 1));
    if (merged == NULL) {
        PyMem_Free(lost);
        Py_DECREF(out);
        release(b, NBUF);
        return PyErr_NoMemory();
    }
    Py_ssize_t i = 0, j = 0, n = 0;
    while (i < nmoved || j < nlost)
        merged[n++] = (j >= nlost || (i < nmoved && moved[i] < lost[j])) ? moved[i++] : lost[j++];
    memcpy(moved, merged, sizeof(Py_ssize_t) * (size_t)n);
    PyMem_Free(merged);
    PyMem_Free(lost);
    release(b, NBUF);
    if (PyByteArray_Resize(out, n * 8) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

enum { S_ETA, S_T_US, S_OFF, S_MIN_A, S_ARG_A, S_ARG_B, S_SHELTER, S_OP, S_RANK, S_HOLD, S_ESC,
       S_LEAVES, S_NBUF };

/* settle(eta, t_us, off, min_a, arg_a, arg_b, shelter, op, rank, hold, esc, leaves, now, margin)
   -> (bytearray of one bool per leaf: its severity stays and only its timer moved, written
   to `esc`; how many of the leaves are covered). */
static PyObject *settle(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != S_NBUF + 2) {
        PyErr_SetString(PyExc_TypeError, "settle takes 14 arguments");
        return NULL;
    }
    static const char *names[S_NBUF] = {"eta", "t_us", "off", "min_a", "arg_a", "arg_b",
                                        "shelter", "op", "rank", "hold", "esc", "leaves"};
    static const char *kinds[S_NBUF] = {"d", "lq", "d", "d", "lq", "lq", "d", "?", "b", "?",
                                        "lq", "lq"};
    static const int writes[S_NBUF] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    Buf b[S_NBUF];
    if (get_all(args, b, S_NBUF, names, kinds, writes) < 0)
        return NULL;
    int64_t now = PyLong_AsLongLong(args[S_NBUF]);
    double margin = PyFloat_AsDouble(args[S_NBUF + 1]);
    if (PyErr_Occurred()) {
        release(b, S_NBUF);
        return NULL;
    }
    Py_ssize_t leaves = b[S_MIN_A].view.len / 8;
    Py_ssize_t cap = leaves ? b[S_ETA].view.len / 8 / leaves : 0;
    Py_ssize_t k = b[S_LEAVES].view.len / 8;
    const Py_ssize_t *which = b[S_LEAVES].view.buf;
    int ok = cap * leaves * 8 == b[S_ETA].view.len && b[S_T_US].view.len == cap * 8 &&
             b[S_OFF].view.len == cap * 8 && b[S_ARG_A].view.len == leaves * 8 &&
             b[S_ARG_B].view.len == leaves * 8 && b[S_SHELTER].view.len == leaves * 8 &&
             b[S_OP].view.len == leaves && b[S_RANK].view.len == leaves &&
             b[S_HOLD].view.len == leaves && b[S_ESC].view.len == leaves * 8;
    for (Py_ssize_t q = 0; ok && q < k; q++)
        ok = which[q] >= 0 && which[q] < leaves;
    const double *min_a = b[S_MIN_A].view.buf;
    const Py_ssize_t *arg_a = b[S_ARG_A].view.buf, *arg_b = b[S_ARG_B].view.buf;
    for (Py_ssize_t q = 0; ok && q < k; q++) {
        Py_ssize_t p = which[q];
        ok = min_a[p] == INFINITY ||
             (arg_a[p] >= 0 && arg_a[p] < cap && arg_b[p] >= 0 && arg_b[p] < cap);
    }
    if (!ok) {
        release(b, S_NBUF);
        PyErr_SetString(PyExc_ValueError, "settle: arrays of mismatched sizes, or slots or "
                                          "leaves out of range");
        return NULL;
    }
    PyObject *out = PyByteArray_FromStringAndSize(NULL, k);
    if (out == NULL) {
        release(b, S_NBUF);
        return NULL;
    }
    char *quiet = PyByteArray_AS_STRING(out);
    const double *eta = b[S_ETA].view.buf, *off = b[S_OFF].view.buf;
    const double *shelter_of = b[S_SHELTER].view.buf;
    const int64_t *t_us = b[S_T_US].view.buf;
    const char *op = b[S_OP].view.buf, *hold = b[S_HOLD].view.buf;
    const signed char *rank_of = b[S_RANK].view.buf;
    int64_t *esc = b[S_ESC].view.buf;
    Py_ssize_t covered = 0;
    for (Py_ssize_t q = 0; q < k; q++) {
        Py_ssize_t p = which[q];
        quiet[q] = 0;
        if (min_a[p] == INFINITY)
            continue;
        covered++;
        Py_ssize_t sa = arg_a[p], sb = arg_b[p];
        double e = eta[p * cap + sa] - (double)(now - t_us[sa]) / 1e6;
        double eb = eta[p * cap + sb] - (double)(now - t_us[sb]) / 1e6;
        double shelter = shelter_of[p], alert_s = off[sb];
        int rank = e <= shelter ? 2 : (eb <= alert_s ? 1 : 0);
        int lenient = e - margin <= shelter ? 2 : (eb - margin <= alert_s ? 1 : 0);
        int64_t due = INT64_MAX; /* NO_DUE */
        if (rank < 2)
            due = now + (int64_t)ceil((e - shelter) * 1e6) + 1;
        if (rank < 1) {
            int64_t point = now + (int64_t)ceil((eb - alert_s) * 1e6) + 1;
            due = point < due ? point : due;
        }
        if (op[p]) {
            rank = rank > 1 ? rank : 1;
            lenient = lenient > 1 ? lenient : 1;
        }
        int cur = rank_of[p];
        int final = rank;
        if (cur > rank) {
            int low = cur < lenient ? cur : lenient;
            final = rank > low ? rank : low;
        }
        if (final == cur && !hold[p]) {
            esc[p] = due;
            quiet[q] = 1;
        }
    }
    release(b, S_NBUF);
    return Py_BuildValue("(Nn)", out, covered);
}

static PyMethodDef methods[] = {
    {"redraw", (PyCFunction)(void (*)(void))redraw, METH_FASTCALL,
     "Field.redraw's array work; see tocsin.engine.field."},
    {"settle", (PyCFunction)(void (*)(void))settle, METH_FASTCALL,
     "_decide_many's array step; see tocsin.engine.rules."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fieldcore",
    "Field.redraw in one pass (see tocsin.engine.field and tocsin.geo.kernel).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fieldcore(void)
{
    return PyModule_Create(&module);
}
