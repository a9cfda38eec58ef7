// countersign's waiting page: follows the manager's decision live and counts down.
//
// The page (views.rs, waiting.html) carries everything this needs as attributes, so no script
// is inline and the CSP can stay `script-src 'self'`:
//   main[data-state="waiting"]  data-events  the flow's Server-Sent Events stream
//                               data-expires until when (RFC 3339)
//   #countdown                  data-seconds seconds left when the page was made
//   #status                     data-approved / data-rejected / data-expired texts
// Events carry the login's JSON: {"status": "pending" | "granted" | "denied", "reason": ...}
// (a denial read through the API is a problem object: {"outcome": "denied", "reason": ...}).
// On a final state the page shows it and goes to /flow/{flow}, where the server continues to
// the application or shows the outcome. EventSource reconnects by itself after an error; there
// is no polling loop. Without script, a <noscript> refresh reloads the page instead.
(function () {
  'use strict';

  var main = document.querySelector('main[data-state="waiting"]');
  if (!main) {
    return;
  }
  var eventsUrl = main.getAttribute('data-events') || '';
  var flowUrl = eventsUrl.replace(/\/events$/, '');
  var status = document.getElementById('status');
  var countdown = document.getElementById('countdown');
  var done = false;
  var source = null;

  // The deadline on this browser's clock: from the seconds the server counted (so a clock
  // that is off does not matter), else from the expiry time itself.
  var seconds = countdown ? parseInt(countdown.getAttribute('data-seconds'), 10) : NaN;
  var deadline = isFinite(seconds)
    ? Date.now() + seconds * 1000
    : Date.parse(main.getAttribute('data-expires') || '');

  function say(which) {
    if (status) {
      var text = status.getAttribute('data-' + which);
      if (text) {
        status.textContent = text;
      }
    }
    main.setAttribute('data-state', which);
  }

  function finish(which) {
    if (done) {
      return;
    }
    done = true;
    if (which) {
      say(which);
    }
    if (source) {
      source.close();
    }
    if (timer) {
      window.clearInterval(timer);
    }
    window.location.assign(flowUrl);
  }

  // What an event's data says: null while still pending (or unreadable).
  function outcome(data) {
    var login;
    try {
      login = JSON.parse(data);
    } catch (e) {
      return null;
    }
    if (!login || login.status === 'pending') {
      return null;
    }
    if (login.status === 'granted') {
      return 'approved';
    }
    if (login.status === 'denied' || login.outcome === 'denied') {
      return login.reason === 'expired' ? 'expired' : 'rejected';
    }
    return null;
  }

  function onEvent(event) {
    var which = outcome(event.data);
    if (which) {
      finish(which);
    }
  }

  function pad(n) {
    return (n < 10 ? '0' : '') + n;
  }

  function tick() {
    if (!countdown || !isFinite(deadline)) {
      return;
    }
    var left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    var h = Math.floor(left / 3600);
    var m = Math.floor((left % 3600) / 60);
    var s = left % 60;
    countdown.textContent = h > 0 ? h + ':' + pad(m) + ':' + pad(s) : pad(m) + ':' + pad(s);
    if (left === 0 && !done) {
      window.clearInterval(timer);
      timer = null;
      say('expired');
      // The stream says so too; should it not (a proxy holding it), ask the page once.
      window.setTimeout(function () {
        if (!done) {
          finish('expired');
        }
      }, 3000);
    }
  }

  var timer = window.setInterval(tick, 1000);
  tick();

  if (eventsUrl && typeof window.EventSource === 'function') {
    source = new window.EventSource(eventsUrl);
    source.addEventListener('status', onEvent);
    source.addEventListener('message', onEvent);
    // A named "error" event from the server carries data (the login could not be read): the
    // page itself says what now. The browser's own error event has none: EventSource retries
    // by itself, unless the stream was refused outright (closed for good); then the page is
    // reloaded after 5 s, as without script.
    source.addEventListener('error', function (event) {
      if (event && typeof event.data === 'string' && event.data) {
        finish(null);
      } else if (source.readyState === window.EventSource.CLOSED && !done) {
        window.setTimeout(function () {
          finish(null);
        }, 5000);
      }
    });
  }
})();
