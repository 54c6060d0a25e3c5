// crossgate postMessage bridge: the frame side. Served from the proxy's origin inside an
// iframe; pages on allowed origins send it requests with postMessage. It answers only origins
// in the bridge's allow_origins (the same YAML allowlist as CORS), fetches only paths under
// allow_paths, same-origin, and posts the result back to the asking origin, never to "*".
(function () {
  'use strict';
  var cfg = JSON.parse(document.getElementById('crossgate-config').textContent);

  function defaultPort(scheme) {
    return scheme === 'https' || scheme === 'wss' ? 443 : scheme === 'http' || scheme === 'ws' ? 80 : null;
  }

  function originAllowed(origin) {
    if (cfg.any) return true;
    if (cfg.exact.indexOf(origin) >= 0) return true;
    if (origin === 'null') return false;
    var m = /^([a-z][a-z0-9+.-]*):\/\/([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?$/.exec(origin);
    if (!m) return false;
    var scheme = m[1];
    var host = m[2];
    var port = m[3] ? parseInt(m[3], 10) : defaultPort(scheme);
    return cfg.wildcards.some(function (w) {
      return w.scheme === scheme && w.port === port && host.length > w.suffix.length &&
        host.slice(host.length - w.suffix.length) === w.suffix;
    });
  }

  function pathAllowed(path) {
    if (typeof path !== 'string' || path.charAt(0) !== '/' || path.charAt(1) === '/' || path.indexOf('\\') >= 0) {
      return false;
    }
    var url = new URL(path, location.origin);
    if (url.origin !== location.origin) return false;
    return cfg.paths.some(function (prefix) { return url.pathname.indexOf(prefix) === 0; });
  }

  function plainHeaders(h) {
    var out = {};
    if (!h || typeof h !== 'object') return out;
    Object.keys(h).forEach(function (k) { out[String(k)] = String(h[k]); });
    return out;
  }

  window.addEventListener('message', function (ev) {
    var m = ev.data;
    if (!m || m.crossgate !== 1) return;
    // An unlisted origin gets no answer at all.
    if (!originAllowed(ev.origin)) return;
    var reply = function (msg) {
      msg.crossgate = 1;
      msg.id = m.id;
      ev.source.postMessage(msg, ev.origin);
    };
    if (m.type === 'hello') {
      reply({ type: 'ready' });
      return;
    }
    if (!pathAllowed(m.path)) {
      reply({ error: 'crossgate bridge: path not allowed: ' + String(m.path) });
      return;
    }
    var init = m.init || {};
    var method = typeof init.method === 'string' ? init.method.toUpperCase() : 'GET';
    fetch(m.path, {
      method: method,
      headers: plainHeaders(init.headers),
      body: method === 'GET' || method === 'HEAD' ? undefined : (init.body == null ? undefined : String(init.body)),
      credentials: cfg.credentials ? 'same-origin' : 'omit',
      cache: 'no-store',
      redirect: 'follow'
    }).then(function (r) {
      return r.text().then(function (body) {
        var headers = {};
        r.headers.forEach(function (v, k) { headers[k] = v; });
        reply({ response: { status: r.status, statusText: r.statusText, ok: r.ok, headers: headers, body: body } });
      });
    }).catch(function (e) {
      reply({ error: 'crossgate bridge: ' + String(e) });
    });
  });
})();
