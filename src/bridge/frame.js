// crossgate postMessage bridge: the frame side. Served from the proxy's origin inside an
// iframe; pages on allowed origins send it requests with postMessage. It answers only origins
// in the bridge's allow_origins (the same YAML allowlist as CORS), fetches only paths under
// allow_paths, same-origin and without following redirects, and posts the result back to the
// asking origin, never to "*".
(function () {
  'use strict';
  var cfg = JSON.parse(document.getElementById('crossgate-config').textContent);

  function defaultPort(scheme) {
    return scheme === 'https' || scheme === 'wss' ? 443 : scheme === 'http' || scheme === 'ws' ? 80 : null;
  }

  function originAllowed(origin) {
    // An opaque origin (sandboxed frame, data: URL) could be anyone: never answered.
    if (origin === 'null') return false;
    if (cfg.any) return true;
    if (cfg.exact.indexOf(origin) >= 0) return true;
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
    if (typeof path !== 'string' || path.charAt(0) !== '/' || path.charAt(1) === '/') return false;
    // The proxy routes on the decoded, dot-resolved path: refuse every spelling that could
    // resolve outside the prefix checked here (%2F, %2e, ..;, backslashes, dot segments).
    var pathOnly = path.split(/[?#]/)[0];
    if (/[%;\\]/.test(pathOnly)) return false;
    if (pathOnly.split('/').some(function (s) { return s === '.' || s === '..'; })) return false;
    var url = new URL(path, location.origin);
    if (url.origin !== location.origin) return false;
    return cfg.paths.some(function (prefix) { return url.pathname.indexOf(prefix) === 0; });
  }

  function plainHeaders(h) {
    var out = {};
    if (!h || typeof h !== 'object') return out;
    Object.keys(h).forEach(function (k) { out[String(k).toLowerCase()] = String(h[k]); });
    return out;
  }

  // What CORS would let a cross-origin page do, applied to the bridge too.
  var SAFELISTED_REQUEST = ['accept', 'accept-language', 'content-language', 'content-type'];
  var SAFELISTED_RESPONSE = ['cache-control', 'content-language', 'content-length', 'content-type', 'expires', 'last-modified', 'pragma'];

  function headersAllowed(headers) {
    if (cfg.headers === null) return null; // mirror: any
    var bad = Object.keys(headers).filter(function (k) {
      return SAFELISTED_REQUEST.indexOf(k) < 0 && cfg.headers.indexOf(k) < 0;
    });
    return bad.length ? bad[0] : null;
  }

  function readable(name) {
    return SAFELISTED_RESPONSE.indexOf(name) >= 0 || cfg.expose.indexOf(name) >= 0 || cfg.expose.indexOf('*') >= 0;
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
    if (['GET', 'HEAD', 'POST'].indexOf(method) < 0 && cfg.methods.indexOf(method) < 0) {
      reply({ error: 'crossgate bridge: method not allowed: ' + method });
      return;
    }
    var headers = plainHeaders(init.headers);
    var badHeader = headersAllowed(headers);
    if (badHeader) {
      reply({ error: 'crossgate bridge: header not allowed: ' + badHeader });
      return;
    }
    fetch(m.path, {
      method: method,
      headers: headers,
      body: method === 'GET' || method === 'HEAD' ? undefined : (init.body == null ? undefined : String(init.body)),
      credentials: cfg.credentials ? 'same-origin' : 'omit',
      cache: 'no-store',
      // A redirect is never followed: its target may be outside allow_paths, and would be
      // fetched with the user's cookies and handed to the page. 'manual' rather than 'error':
      // the answer is an opaque-redirect response, which says what happened, where 'error'
      // rejects with the same TypeError as a network failure. The target is never requested.
      redirect: 'manual'
    }).then(function (r) {
      if (r.type === 'opaqueredirect') {
        reply({ error: 'crossgate bridge: redirect refused: ' + m.path + ' answered with a redirect, which the bridge does not follow (its target may be outside allow_paths); fetch the target path itself' });
        return;
      }
      return r.text().then(function (body) {
        var headers = {};
        r.headers.forEach(function (v, k) { if (readable(k)) headers[k] = v; });
        reply({ response: { status: r.status, statusText: r.statusText, ok: r.ok, headers: headers, body: body } });
      });
    }).catch(function (e) {
      reply({ error: 'crossgate bridge: ' + String(e) });
    });
  });
})();
