/* Which leaves a planar footprint meets, and GEOS's point-to-polygon distances, in one pass.

   The optional compiled half of `tocsin.geo.index` (see `tocsin.geo.kernel`). Every answer it
   gives is the one the pure path (GEOS through shapely) gives, or it says it cannot tell:

   - Whether a point lies inside a ring set is the even-odd crossing count, each crossing
     decided by the sign of an orientation determinant behind Shewchuk's first error bound
     (orient2d's "A" filter). A sign the bound cannot vouch for, a zero included, makes the
     answer UNSURE; otherwise the count is exact, as GEOS's own robust predicates are.
   - A leaf meets the footprint if a point of one lies strictly inside the other or two of
     their edges properly cross, all decided the same way; it does not if every edge pair is
     certainly apart and no vertex of either is inside the other. Anything else (touching,
     collinear or near-degenerate edges) is handed back for GEOS's `intersects` to judge.
   - A distance is GEOS's `Distance::pointToSegment`, operation for operation, minimised over
     every segment of the leaf (the minimum does not depend on the order), and 0 when the point
     is inside. Built with floating-point contraction off, so no fused multiply-add changes a
     rounding; a point on or too near a boundary is handed back to GEOS.

   Nothing is written after construction, and the loops run without the GIL, so queries may
   run in several threads at once. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define NDIR 16
/* Plain comparisons: libm's fmin and fmax are calls, kept for NaN rules no caller needs. */
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define OUTSIDE 0
#define INSIDE 1
#define UNSURE 2

/* Shewchuk's epsilon (half an ulp of 1) and orient2d's first error bound. */
static const double EPS = 1.1102230246251565e-16;
static double CCW_BOUND_A;
/* Products below this may have lost precision to underflow (see `orient`). */
static const double TINY = 1e-280;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;      /* leaves */
    Py_ssize_t nseg;   /* segments of all leaves */
    double slack;      /* metres added to the footprint's reach along each direction */
    double *box;       /* n x 4: min x, min y, max x, max y */
    double *ext;       /* n x NDIR: each leaf's minimum along each direction */
    double *dir;       /* NDIR x 2 */
    double *rx, *ry;   /* n: a point inside each leaf */
    double *ax, *ay, *bx, *by; /* nseg: segment ends, grouped by leaf */
    int64_t *start;    /* n + 1: each leaf's first segment */
    /* Runs of up to CHUNK consecutive segments of one leaf, with the box around each run, so
       that a distance can pass over most of a leaf's boundary a run at a time. */
    double *cbox;      /* chunks x 4 */
    int64_t *cstart;   /* n + 1: each leaf's first chunk */
    /* The conic frame's scale correction (tocsin.geo.planar), if given: the table of 1/k
       against the squared distance from the cone's apex, its slopes, and per leaf half its
       centre's offset from the apex and 1/(6k) there. */
    Py_ssize_t nk;
    double apex_x, apex_y;
    double *rho2, *invk, *slope; /* nk, nk, nk - 1 */
    double *half;                /* n x 2 */
    double *end;                 /* n */
} LeafTable;

#define CHUNK 8

/* The sign of orient2d(a, b, q): +1 if q is left of a->b, -1 right, 0 if it cannot tell. */
static inline int orient(double ax, double ay, double bx, double by, double qx, double qy)
{
    double dax = ax - qx, dby = by - qy, day = ay - qy, dbx = bx - qx;
    double left = dax * dby;
    double right = day * dbx;
    /* The bound assumes no product underflowed: one that did may have lost its sign. A
       difference is zero only when its two coordinates are equal, so a zero made that way is
       exact. */
    if ((fabs(left) < TINY && dax != 0.0 && dby != 0.0) ||
        (fabs(right) < TINY && day != 0.0 && dbx != 0.0))
        return 0;
    double det = left - right;
    double sum;
    if (left > 0.0) {
        if (right <= 0.0)
            return det > 0.0 ? 1 : 0;
        sum = left + right;
    } else if (left < 0.0) {
        if (right >= 0.0)
            return det < 0.0 ? -1 : 0;
        sum = -left - right;
    } else {
        return right < 0.0 ? 1 : (right > 0.0 ? -1 : 0);
    }
    double bound = CCW_BOUND_A * sum;
    if (det > bound)
        return 1;
    if (-det > bound)
        return -1;
    return 0;
}

/* Point in a ring set given as segments [lo, hi): INSIDE, OUTSIDE or UNSURE. */
static int locate_segments(const LeafTable *t, int64_t lo, int64_t hi, double qx, double qy)
{
    int inside = 0;
    for (int64_t j = lo; j < hi; j++) {
        double ay = t->ay[j], by = t->by[j];
        if ((ay > qy) != (by > qy)) {
            int o = orient(t->ax[j], ay, t->bx[j], by, qx, qy);
            if (o == 0)
                return UNSURE;
            if ((by > ay) ? (o > 0) : (o < 0))
                inside ^= 1;
        }
    }
    return inside ? INSIDE : OUTSIDE;
}

/* The footprint ring (m vertices, closed implicitly) and what is known of its shape. */
typedef struct {
    const double *px, *py;
    Py_ssize_t m;
    int turn;       /* +1 or -1 when certainly convex, turning that way; else 0 */
    double cx, cy;  /* when convex: a point certainly inside ... */
    double inner2;  /* ... and the squared radius of a disc round it certainly inside (or 0) */
} Ring;

/* Point in the footprint ring: INSIDE, OUTSIDE or UNSURE. */
static int locate_ring(const Ring *ring, double qx, double qy)
{
    const double *px = ring->px, *py = ring->py;
    Py_ssize_t m = ring->m;
    double dx = qx - ring->cx, dy = qy - ring->cy;
    if (dx * dx + dy * dy < ring->inner2)
        return INSIDE;
    int inside = 0;
    for (Py_ssize_t k = 0; k < m; k++) {
        Py_ssize_t k1 = (k + 1 == m) ? 0 : k + 1;
        double ay = py[k], by = py[k1];
        if ((ay > qy) != (by > qy)) {
            int o = orient(px[k], ay, px[k1], by, qx, qy);
            if (o == 0)
                return UNSURE;
            if ((by > ay) ? (o > 0) : (o < 0))
                inside ^= 1;
        }
    }
    return inside ? INSIDE : OUTSIDE;
}

/* Do the closed segments p1p2 and q1q2 meet? INSIDE (they cross), OUTSIDE, or UNSURE. */
static int segments_meet(double p1x, double p1y, double p2x, double p2y,
                         double q1x, double q1y, double q2x, double q2y)
{
    if (MAX(p1x, p2x) < MIN(q1x, q2x) || MAX(q1x, q2x) < MIN(p1x, p2x) ||
        MAX(p1y, p2y) < MIN(q1y, q2y) || MAX(q1y, q2y) < MIN(p1y, p2y))
        return OUTSIDE;
    int o1 = orient(p1x, p1y, p2x, p2y, q1x, q1y);
    int o2 = orient(p1x, p1y, p2x, p2y, q2x, q2y);
    if (o1 != 0 && o1 == o2)
        return OUTSIDE;
    int o3 = orient(q1x, q1y, q2x, q2y, p1x, p1y);
    int o4 = orient(q1x, q1y, q2x, q2y, p2x, p2y);
    if (o3 != 0 && o3 == o4)
        return OUTSIDE;
    if (o1 != 0 && o2 != 0 && o3 != 0 && o4 != 0)
        return INSIDE; /* each pair of ends on opposite sides: a proper crossing */
    return UNSURE;
}

/* +1 or -1 if the ring certainly turns that way at every vertex (it is convex), else 0. */
static int convex_turn(const double *px, const double *py, Py_ssize_t m)
{
    int turn = 0;
    for (Py_ssize_t k = 0; k < m; k++) {
        Py_ssize_t k0 = (k == 0) ? m - 1 : k - 1, k1 = (k + 1 == m) ? 0 : k + 1;
        int o = orient(px[k0], py[k0], px[k], py[k], px[k1], py[k1]);
        if (o == 0 || (turn != 0 && o != turn))
            return 0;
        turn = o;
    }
    return turn;
}

/* Fill in a ring's shape: whether it is convex and, if so, a disc certainly inside it. The
   disc is centred on the mean of the vertices if that is certainly inside, with the least
   distance from there to an edge's line as its radius, shrunk by margins far wider than the
   few ulps by which that distance may err: every point of it lies in every edge's inner
   half-plane, so in the ring. */
static void ring_shape(Ring *ring)
{
    const double *px = ring->px, *py = ring->py;
    Py_ssize_t m = ring->m;
    ring->turn = convex_turn(px, py, m);
    ring->cx = ring->cy = 0.0;
    ring->inner2 = 0.0;
    if (ring->turn == 0)
        return;
    double cx = 0.0, cy = 0.0;
    for (Py_ssize_t k = 0; k < m; k++) {
        cx += px[k];
        cy += py[k];
    }
    cx /= (double)m;
    cy /= (double)m;
    double least = INFINITY;
    for (Py_ssize_t k = 0; k < m; k++) {
        Py_ssize_t k1 = (k + 1 == m) ? 0 : k + 1;
        if (orient(px[k], py[k], px[k1], py[k1], cx, cy) != ring->turn)
            return;
        double ex = px[k1] - px[k], ey = py[k1] - py[k];
        double cross = (px[k] - cx) * (py[k1] - cy) - (py[k] - cy) * (px[k1] - cx);
        least = MIN(least, fabs(cross) / sqrt(ex * ex + ey * ey));
    }
    double safe = least * (1.0 - 1e-9) - 1e-6;
    ring->cx = cx;
    ring->cy = cy;
    ring->inner2 = safe > 0.0 ? safe * safe * (1.0 - 1e-9) : 0.0;
}

/* Is every vertex of leaf i certainly beyond one edge line of the convex ring (which turns
   `turn`)? The leaf lies in the hull of its vertices, so the line then separates the two. */
static int separated(const LeafTable *t, int64_t lo, int64_t hi, const Ring *ring)
{
    const double *px = ring->px, *py = ring->py;
    Py_ssize_t m = ring->m;
    int turn = ring->turn;
    for (Py_ssize_t k = 0; k < m; k++) {
        Py_ssize_t k1 = (k + 1 == m) ? 0 : k + 1;
        int64_t j = lo;
        while (j < hi && orient(px[k], py[k], px[k1], py[k1], t->ax[j], t->ay[j]) == -turn)
            j++;
        if (j == hi)
            return 1;
    }
    return 0;
}

/* Does leaf i meet the footprint ring? */
static int leaf_meets(const LeafTable *t, Py_ssize_t i, const Ring *ring)
{
    const double *px = ring->px, *py = ring->py;
    Py_ssize_t m = ring->m;
    if (locate_ring(ring, t->rx[i], t->ry[i]) == INSIDE)
        return INSIDE;
    int64_t lo = t->start[i], hi = t->start[i + 1];
    if (ring->turn != 0 && hi > lo && separated(t, lo, hi, ring))
        return OUTSIDE;
    int unsure = 0;
    if (ring->turn != 0 && hi > lo) {
        /* A leaf that meets a convex ring from outside most often has its vertex nearest the
           ring's inner centre inside it: test that one first. Any vertex inside decides, so
           the order changes only how soon the answer comes, never the answer. */
        int64_t near = lo;
        double best = INFINITY;
        for (int64_t j = lo; j < hi; j++) {
            double dx = t->ax[j] - ring->cx, dy = t->ay[j] - ring->cy;
            double d2 = dx * dx + dy * dy;
            if (d2 < best) {
                best = d2;
                near = j;
            }
        }
        int r = locate_ring(ring, t->ax[near], t->ay[near]);
        if (r == INSIDE)
            return INSIDE;
        unsure |= (r == UNSURE);
    }
    for (int64_t j = lo; j < hi; j++) {
        int r = locate_ring(ring, t->ax[j], t->ay[j]);
        if (r == INSIDE)
            return INSIDE;
        unsure |= (r == UNSURE);
    }
    for (Py_ssize_t k = 0; k < m; k++) {
        int r = locate_segments(t, lo, hi, px[k], py[k]);
        if (r == INSIDE)
            return INSIDE;
        unsure |= (r == UNSURE);
    }
    for (Py_ssize_t k = 0; k < m; k++) {
        Py_ssize_t k1 = (k + 1 == m) ? 0 : k + 1;
        for (int64_t j = lo; j < hi; j++) {
            int r = segments_meet(px[k], py[k], px[k1], py[k1],
                                  t->ax[j], t->ay[j], t->bx[j], t->by[j]);
            if (r == INSIDE)
                return INSIDE;
            unsure |= (r == UNSURE);
        }
    }
    return unsure ? UNSURE : OUTSIDE;
}

/* GEOS Distance::pointToSegment, step for step. */
static inline double point_to_segment(double x, double y, double ax, double ay, double bx,
                                      double by)
{
    if (ax == bx && ay == by)
        return sqrt((x - ax) * (x - ax) + (y - ay) * (y - ay));
    double len2 = (bx - ax) * (bx - ax) + (by - ay) * (by - ay);
    double r = ((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / len2;
    if (r <= 0.0)
        return sqrt((x - ax) * (x - ax) + (y - ay) * (y - ay));
    if (r >= 1.0)
        return sqrt((x - bx) * (x - bx) + (y - by) * (y - by));
    double s = ((ay - y) * (bx - ax) - (ax - x) * (by - ay)) / len2;
    return fabs(s) * sqrt(len2);
}

/* Squared distance from (x, y) to a box (min x, min y, max x, max y): a lower bound. */
static inline double gap2(double x0, double y0, double x1, double y1, double x, double y)
{
    double dx = MAX(MAX(x0 - x, x - x1), 0.0);
    double dy = MAX(MAX(y0 - y, y - y1), 0.0);
    return dx * dx + dy * dy;
}

/* ... to the box of segment j. */
static inline double box_gap2(const LeafTable *t, int64_t j, double x, double y)
{
    double ax = t->ax[j], ay = t->ay[j], bx = t->bx[j], by = t->by[j];
    return gap2(MIN(ax, bx), MIN(ay, by), MAX(ax, bx), MAX(ay, by), x, y);
}

/* A segment whose box is farther than this from the point cannot hold a GEOS distance under
   `best`. GEOS's formula errs by a few ulps of the coordinate differences: under 1e-8 m for
   any planar frame (coordinates within 4e7 m), and relatively by a few 1e-16 off the cross
   product's cancellation; the margins are far wider than both. */
static inline double prune_limit(double best)
{
    double far = best * (1.0 + 1e-9) + 1e-6;
    return far * far;
}

/* GEOS's distance from an outside point to leaf i's segments: their minimum. The run of
   segments with the nearest box goes first, then only the runs, and in them the segments,
   whose box could still hold a nearer point: the minimum, its float included, is the one
   measuring every segment would give. */
static double leaf_distance(const LeafTable *t, Py_ssize_t i, double x, double y)
{
    int64_t c0 = t->cstart[i], c1 = t->cstart[i + 1], first = c0;
    double gap = INFINITY;
    for (int64_t c = c0; c < c1; c++) {
        const double *b = t->cbox + 4 * c;
        double g = gap2(b[0], b[1], b[2], b[3], x, y);
        if (g < gap) {
            gap = g;
            first = c;
        }
    }
    int64_t end = t->start[i + 1];
    double best = INFINITY, limit = INFINITY;
    for (int64_t k = 0; k <= c1 - c0; k++) {
        /* the nearest run first, then the others in order */
        int64_t c = (k == 0) ? first : c0 + k - 1;
        if (k > 0 && c == first)
            continue;
        const double *b = t->cbox + 4 * c;
        if (k > 0 && gap2(b[0], b[1], b[2], b[3], x, y) > limit)
            continue;
        int64_t lo = t->start[i] + (c - c0) * CHUNK, hi = MIN(lo + CHUNK, end);
        for (int64_t j = lo; j < hi; j++) {
            if (box_gap2(t, j, x, y) > limit)
                continue;
            double d = point_to_segment(x, y, t->ax[j], t->ay[j], t->bx[j], t->by[j]);
            if (d < best) {
                best = d;
                limit = prune_limit(best);
            }
        }
    }
    return best;
}

/* 1/k at a squared distance from the apex: `PlanarFrame.inv_k`, step for step (np.interp's
   rule: the largest row at or below, its slope, exact rows and both ends as they are). */
static double inv_k(const LeafTable *t, double squared)
{
    Py_ssize_t lo = 0, hi = t->nk;
    while (lo < hi) { /* bisect_right */
        Py_ssize_t mid = (lo + hi) / 2;
        if (squared < t->rho2[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    Py_ssize_t j = lo - 1;
    if (j < 0)
        return t->invk[0];
    if (j >= t->nk - 1)
        return t->invk[t->nk - 1];
    if (squared == t->rho2[j])
        return t->invk[j];
    double result = t->slope[j] * (squared - t->rho2[j]);
    result += t->invk[j];
    return result;
}

/* --- the Python type ------------------------------------------------------------------------ */

static int is_kind(const Py_buffer *view, const char *kinds)
{
    return view->itemsize == 8 && view->format != NULL && view->format[0] != '\0' &&
           strchr(kinds, view->format[0]) != NULL;
}

/* How many 8-byte items a buffer holds, or -1 with the error set. */
static Py_ssize_t items(PyObject *obj)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    Py_ssize_t count = view.len / 8;
    PyBuffer_Release(&view);
    return count;
}

static int take(PyObject *obj, const char *name, const char *kinds, Py_ssize_t count,
                void **dest)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    int ok = is_kind(&view, kinds) && view.len == 8 * count;
    if (!ok) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items of kind %s", name, count,
                     kinds);
        return -1;
    }
    void *copy = PyMem_Malloc(view.len ? view.len : 1);
    if (copy == NULL) {
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return -1;
    }
    memcpy(copy, view.buf, view.len);
    PyBuffer_Release(&view);
    *dest = copy;
    return 0;
}

static void LeafTable_dealloc(LeafTable *self)
{
    void *arrays[] = {self->box, self->ext, self->dir, self->rx, self->ry, self->ax,
                      self->ay, self->bx, self->by, self->start, self->cbox, self->cstart,
                      self->rho2, self->invk, self->slope, self->half, self->end};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        PyMem_Free(arrays[k]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int LeafTable_init(LeafTable *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"box", "extent", "directions", "rx", "ry", "ax", "ay", "bx", "by",
                            "start", "slack", "scale", NULL};
    PyObject *box, *ext, *dir, *rx, *ry, *ax, *ay, *bx, *by, *start, *scale = Py_None;
    double slack;
    if (self->start != NULL) {
        PyErr_SetString(PyExc_TypeError, "LeafTable is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOOOOOd|O", names, &box, &ext, &dir, &rx,
                                     &ry, &ax, &ay, &bx, &by, &start, &slack, &scale))
        return -1;
    Py_ssize_t offsets = items(start), nseg = items(ax);
    if (offsets < 0 || nseg < 0)
        return -1;
    Py_ssize_t n = offsets - 1;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "start: expected n + 1 offsets");
        return -1;
    }
    self->n = n;
    self->nseg = nseg;
    self->slack = slack;
    if (take(start, "start", "lq", n + 1, (void **)&self->start) < 0 ||
        take(box, "box", "d", n * 4, (void **)&self->box) < 0 ||
        take(ext, "extent", "d", n * NDIR, (void **)&self->ext) < 0 ||
        take(dir, "directions", "d", NDIR * 2, (void **)&self->dir) < 0 ||
        take(rx, "rx", "d", n, (void **)&self->rx) < 0 ||
        take(ry, "ry", "d", n, (void **)&self->ry) < 0 ||
        take(ax, "ax", "d", nseg, (void **)&self->ax) < 0 ||
        take(ay, "ay", "d", nseg, (void **)&self->ay) < 0 ||
        take(bx, "bx", "d", nseg, (void **)&self->bx) < 0 ||
        take(by, "by", "d", nseg, (void **)&self->by) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (self->start[i] < 0 || self->start[i] > self->start[i + 1] ||
            self->start[i + 1] > nseg) {
            PyErr_SetString(PyExc_ValueError, "start: offsets must ascend within the segments");
            return -1;
        }
    }
    Py_ssize_t chunks = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        chunks += (Py_ssize_t)((self->start[i + 1] - self->start[i] + CHUNK - 1) / CHUNK);
    self->cbox = PyMem_Malloc(sizeof(double) * 4 * (size_t)(chunks ? chunks : 1));
    self->cstart = PyMem_Malloc(sizeof(int64_t) * (size_t)(n + 1));
    if (self->cbox == NULL || self->cstart == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int64_t c = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        self->cstart[i] = c;
        for (int64_t lo = self->start[i]; lo < self->start[i + 1]; lo += CHUNK, c++) {
            int64_t hi = MIN(lo + CHUNK, self->start[i + 1]);
            double *b = self->cbox + 4 * c;
            b[0] = b[2] = self->ax[lo];
            b[1] = b[3] = self->ay[lo];
            for (int64_t j = lo; j < hi; j++) {
                b[0] = MIN(b[0], MIN(self->ax[j], self->bx[j]));
                b[1] = MIN(b[1], MIN(self->ay[j], self->by[j]));
                b[2] = MAX(b[2], MAX(self->ax[j], self->bx[j]));
                b[3] = MAX(b[3], MAX(self->ay[j], self->by[j]));
            }
        }
    }
    self->cstart[n] = c;
    if (scale == Py_None)
        return 0;
    PyObject *rho2, *invk, *slope, *half, *end;
    if (!PyArg_ParseTuple(scale, "ddOOOOO;scale: (apex x, apex y, rho2, inv_k, slope, half, end)",
                          &self->apex_x, &self->apex_y, &rho2, &invk, &slope, &half, &end))
        return -1;
    Py_ssize_t nk = items(rho2);
    if (nk < 0)
        return -1;
    if (nk < 2) {
        PyErr_SetString(PyExc_ValueError, "rho2: the scale table needs two rows or more");
        return -1;
    }
    if (take(rho2, "rho2", "d", nk, (void **)&self->rho2) < 0 ||
        take(invk, "inv_k", "d", nk, (void **)&self->invk) < 0 ||
        take(slope, "slope", "d", nk - 1, (void **)&self->slope) < 0 ||
        take(half, "half", "d", n * 2, (void **)&self->half) < 0 ||
        take(end, "end", "d", n, (void **)&self->end) < 0)
        return -1;
    self->nk = nk;
    return 0;
}

static int ring_arg(PyObject *const *args, Py_buffer *xs, Py_buffer *ys, Py_ssize_t *m)
{
    if (PyObject_GetBuffer(args[0], xs, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (PyObject_GetBuffer(args[1], ys, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(xs);
        return -1;
    }
    if (!is_kind(xs, "d") || !is_kind(ys, "d") || xs->len != ys->len || xs->len < 3 * 8) {
        PyBuffer_Release(xs);
        PyBuffer_Release(ys);
        PyErr_SetString(PyExc_ValueError, "expected two float64 arrays of at least 3 vertices");
        return -1;
    }
    *m = xs->len / 8;
    return 0;
}

static PyObject *LeafTable_cover(LeafTable *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "cover(x, y) takes the footprint ring's vertices");
        return NULL;
    }
    Py_buffer xs, ys;
    Py_ssize_t m;
    if (ring_arg(args, &xs, &ys, &m) < 0)
        return NULL;
    const double *px = xs.buf, *py = ys.buf;
    Py_ssize_t n = self->n;
    PyObject *hits = PyByteArray_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(Py_ssize_t));
    PyObject *unsure = PyByteArray_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(Py_ssize_t));
    if (hits == NULL || unsure == NULL) {
        Py_XDECREF(hits);
        Py_XDECREF(unsure);
        PyBuffer_Release(&xs);
        PyBuffer_Release(&ys);
        return NULL;
    }
    Py_ssize_t *hit = (Py_ssize_t *)PyByteArray_AS_STRING(hits);
    Py_ssize_t *maybe = (Py_ssize_t *)PyByteArray_AS_STRING(unsure);
    Py_ssize_t nh = 0, nu = 0;
    Py_BEGIN_ALLOW_THREADS
    double minx = px[0], maxx = px[0], miny = py[0], maxy = py[0];
    double reach[NDIR];
    for (int d = 0; d < NDIR; d++)
        reach[d] = -INFINITY;
    for (Py_ssize_t k = 0; k < m; k++) {
        minx = MIN(minx, px[k]);
        maxx = MAX(maxx, px[k]);
        miny = MIN(miny, py[k]);
        maxy = MAX(maxy, py[k]);
        for (int d = 0; d < NDIR; d++)
            reach[d] = MAX(reach[d], px[k] * self->dir[2 * d] + py[k] * self->dir[2 * d + 1]);
    }
    for (int d = 0; d < NDIR; d++)
        reach[d] += self->slack;
    Ring ring = {px, py, m, 0, 0.0, 0.0, 0.0};
    ring_shape(&ring);
    for (Py_ssize_t i = 0; i < n; i++) {
        const double *b = self->box + 4 * i;
        if (b[0] > maxx || b[2] < minx || b[1] > maxy || b[3] < miny)
            continue;
        const double *e = self->ext + NDIR * i;
        int out = 0;
        for (int d = 0; d < NDIR; d++)
            out |= e[d] > reach[d];
        if (out)
            continue;
        int r = leaf_meets(self, i, &ring);
        if (r == INSIDE)
            hit[nh++] = i;
        else if (r == UNSURE)
            maybe[nu++] = i;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&xs);
    PyBuffer_Release(&ys);
    if (PyByteArray_Resize(hits, nh * (Py_ssize_t)sizeof(Py_ssize_t)) < 0 ||
        PyByteArray_Resize(unsure, nu * (Py_ssize_t)sizeof(Py_ssize_t)) < 0) {
        Py_DECREF(hits);
        Py_DECREF(unsure);
        return NULL;
    }
    return Py_BuildValue("(NN)", hits, unsure);
}

static PyObject *LeafTable_distances(LeafTable *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "distances(x, y, leaves) takes a point and indices");
        return NULL;
    }
    double x = PyFloat_AsDouble(args[0]);
    double y = PyFloat_AsDouble(args[1]);
    if (PyErr_Occurred())
        return NULL;
    Py_buffer idx;
    if (PyObject_GetBuffer(args[2], &idx, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    if (!is_kind(&idx, "lq")) {
        PyBuffer_Release(&idx);
        PyErr_SetString(PyExc_ValueError, "leaves: expected an array of intp");
        return NULL;
    }
    Py_ssize_t k = idx.len / (Py_ssize_t)sizeof(Py_ssize_t);
    const Py_ssize_t *leaves = idx.buf;
    for (Py_ssize_t q = 0; q < k; q++) {
        if (leaves[q] < 0 || leaves[q] >= self->n) {
            PyBuffer_Release(&idx);
            PyErr_SetString(PyExc_IndexError, "leaves: index out of range");
            return NULL;
        }
    }
    PyObject *result = PyByteArray_FromStringAndSize(NULL, k * (Py_ssize_t)sizeof(double));
    if (result == NULL) {
        PyBuffer_Release(&idx);
        return NULL;
    }
    double *out = (double *)PyByteArray_AS_STRING(result);
    Py_ssize_t unsure = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t q = 0; q < k; q++) {
        Py_ssize_t i = leaves[q];
        int64_t lo = self->start[i], hi = self->start[i + 1];
        const double *b = self->box + 4 * i;
        /* strictly outside its box is certainly outside the leaf */
        int where = (x < b[0] || x > b[2] || y < b[1] || y > b[3])
                        ? OUTSIDE : locate_segments(self, lo, hi, x, y);
        if (where == INSIDE) {
            out[q] = 0.0;
        } else if (where == UNSURE || lo == hi) {
            out[q] = NAN;
            unsure++;
        } else {
            out[q] = leaf_distance(self, i, x, y);
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&idx);
    return Py_BuildValue("(Nn)", result, unsure);
}

static PyObject *LeafTable_measure(LeafTable *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (self->nk == 0) {
        PyErr_SetString(PyExc_ValueError, "measure: this table has no scale correction");
        return NULL;
    }
    PyObject *got = LeafTable_distances(self, args, nargs);
    if (got == NULL)
        return NULL;
    PyObject *bytes = PyTuple_GET_ITEM(got, 0);
    Py_ssize_t unsure = PyLong_AsSsize_t(PyTuple_GET_ITEM(got, 1));
    double *d = (double *)PyByteArray_AS_STRING(bytes);
    const Py_ssize_t k = PyByteArray_GET_SIZE(bytes) / (Py_ssize_t)sizeof(double);
    Py_buffer idx;
    if (PyObject_GetBuffer(args[2], &idx, PyBUF_C_CONTIGUOUS) < 0) {
        Py_DECREF(got);
        return NULL;
    }
    const Py_ssize_t *leaves = idx.buf;
    double x = PyFloat_AsDouble(args[0]), y = PyFloat_AsDouble(args[1]);
    double most = 0.0;
    Py_BEGIN_ALLOW_THREADS
    /* PlanarFrame.scale_factors, the same steps in the same order */
    double rx = x - self->apex_x, ry = y - self->apex_y;
    double start = inv_k(self, rx * rx + ry * ry) * (1.0 / 6.0);
    double hx = rx * 0.5, hy = ry * 0.5;
    for (Py_ssize_t q = 0; q < k; q++) {
        if (d[q] != d[q])
            continue; /* NaN: GEOS measures it */
        most = MAX(most, d[q]);
        Py_ssize_t i = leaves[q];
        double mx = self->half[2 * i] + hx, my = self->half[2 * i + 1] + hy;
        double squared = mx * mx;
        squared += my * my;
        double factor = inv_k(self, squared) * (4.0 / 6.0);
        factor += self->end[i];
        factor += start;
        d[q] = d[q] * factor;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&idx);
    PyObject *result = Py_BuildValue("(Ond)", bytes, unsure, most);
    Py_DECREF(got);
    return result;
}

static PyMethodDef LeafTable_methods[] = {
    {"cover", (PyCFunction)(void (*)(void))LeafTable_cover, METH_FASTCALL,
     "cover(x, y) -> (hits, unsure): leaf indices (intp bytes, ascending) the footprint ring "
     "certainly meets, and those only GEOS can judge."},
    {"distances", (PyCFunction)(void (*)(void))LeafTable_distances, METH_FASTCALL,
     "distances(x, y, leaves) -> (float64 bytes, unsure): GEOS's distance from the point to "
     "each leaf; NaN where only GEOS can tell, counted in `unsure`."},
    {"measure", (PyCFunction)(void (*)(void))LeafTable_measure, METH_FASTCALL,
     "measure(x, y, leaves) -> (float64 bytes, unsure, farthest): `distances` times the conic "
     "scale factor (PlanarFrame.scale_factors), and the largest planar distance measured."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LeafTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tocsin.geo._leafcore.LeafTable",
    .tp_basicsize = sizeof(LeafTable),
    .tp_dealloc = (destructor)LeafTable_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Leaf boundaries as flat arrays, for exact footprint tests and distances.",
    .tp_methods = LeafTable_methods,
    .tp_init = (initproc)LeafTable_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_leafcore",
    "Exact footprint tests and GEOS's distances over leaf polygons (see tocsin.geo.kernel).",
    -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__leafcore(void)
{
    CCW_BOUND_A = (3.0 + 16.0 * EPS) * EPS;
    if (PyType_Ready(&LeafTableType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&LeafTableType);
    if (PyModule_AddObject(m, "LeafTable", (PyObject *)&LeafTableType) < 0) {
        Py_DECREF(&LeafTableType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
