// The live feed: one EventSource on /api/v1/stream, no polling.
//
// EventSource reconnects by itself after a network error and sends Last-Event-ID (the log
// seq of the last transition), so the server resumes with no gap. It gives up for good only
// when the server answers with an error (e.g. 503 while starting); then a new EventSource is
// opened with ?since=<last seq>, which resumes the same way.

const TYPES = ["alert_started", "alert_updated", "alert_ended", "level_changed", "silent_impact", "siren_fault"];

/**
 * Connect and call `onEnvelope(env)` per transition and `onStatus("live"|"connecting"|"down")`.
 * `lastSeq()` tells where to resume after a forced reopen.
 */
export function connect({ onEnvelope, onStatus, lastSeq }) {
  let es = null;
  let reopenTimer = null;
  let downTimer = null;

  function open() {
    const seq = lastSeq();
    es = new EventSource(seq ? `/api/v1/stream?since=${seq}` : "/api/v1/stream");
    es.onopen = () => {
      clearTimeout(downTimer);
      downTimer = null;
      onStatus("live");
    };
    es.onerror = () => {
      // a short blip shows "connecting"; the banner comes up only if it lasts
      onStatus("connecting");
      if (!downTimer) downTimer = setTimeout(() => onStatus("down"), 2500);
      if (es.readyState === EventSource.CLOSED) {
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
      clearTimeout(reopenTimer);
      clearTimeout(downTimer);
      if (es) es.close();
    },
  };
}
