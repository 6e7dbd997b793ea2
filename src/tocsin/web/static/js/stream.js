// The live feed: one EventSource on /api/v1/stream, no polling.
//
// EventSource reconnects by itself after a network error and sends Last-Event-ID (the log
// seq of the last transition), so the server resumes with no gap. It gives up for good only
// when the server answers with an error (e.g. 503 while starting); then a new EventSource is
// opened with ?since=<last seq>, which resumes the same way.
//
// On a --private server (`ticket` given) each opening first asks for a single-use ticket:
// EventSource cannot send a key in a header, and the key must not go into a URL. A ticket is
// used up by the first request, so after any error the page opens a new EventSource with a
// new ticket rather than letting the browser retry the spent one.

const TYPES = ["alert_started", "alert_updated", "alert_ended", "level_changed", "silent_impact", "siren_fault"];

/**
 * Connect and call `onEnvelope(env)` per transition and `onStatus("live"|"connecting"|"down")`.
 * `lastSeq()` tells where to resume after a forced reopen.
 */
export function connect({ onEnvelope, onStatus, lastSeq, ticket = null }) {
  let es = null;
  let reopenTimer = null;
  let downTimer = null;
  let closed = false;

  function failed() {
    onStatus("connecting");
    if (!downTimer) downTimer = setTimeout(() => onStatus("down"), 2500);
  }

  async function open() {
    const seq = lastSeq();
    const params = new URLSearchParams();
    if (seq) params.set("since", String(seq));
    if (ticket) {
      try {
        params.set("ticket", await ticket());
      } catch {
        failed();
        clearTimeout(reopenTimer);
        reopenTimer = setTimeout(open, 2000);
        return;
      }
      if (closed) return;
    }
    const query = params.toString();
    es = new EventSource(query ? `/api/v1/stream?${query}` : "/api/v1/stream");
    es.onopen = () => {
      clearTimeout(downTimer);
      downTimer = null;
      onStatus("live");
    };
    es.onerror = () => {
      // a short blip shows "connecting"; the banner comes up only if it lasts
      failed();
      if (ticket) {
        es.close();
        clearTimeout(reopenTimer);
        reopenTimer = setTimeout(open, 1000);
      } else if (es.readyState === EventSource.CLOSED) {
        clearTimeout(reopenTimer);
        reopenTimer = setTimeout(open, 3000);
      }
    };
    for (const type of TYPES) {
      es.addEventListener(type, (msg) => {
        let env;
        try {
          env = JSON.parse(msg.data);
        } catch {
          return;
        }
        onEnvelope(env);
      });
    }
  }

  open();
  return {
    close() {
      closed = true;
      clearTimeout(reopenTimer);
      clearTimeout(downTimer);
      if (es) es.close();
    },
  };
}
