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

  // Header values as fetch() will send them: leading and trailing HTTP whitespace removed
  // (https://fetch.spec.whatwg.org/#concept-header-value-normalize), so that the value checked
  // is the value sent.
  function plainHeaders(h) {
    var out = {};
    if (!h || typeof h !== 'object') return out;
    Object.keys(h).forEach(function (k) {
      out[String(k).toLowerCase()] = String(h[k]).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
    });
    return out;
  }

  // What CORS would let a cross-origin page do, applied to the bridge too: the frame's fetch is
  // same-origin, so the browser runs no preflight for it and the frame must refuse whatever a
  // preflight against the bridge's policy would refuse.
  var SAFELISTED_RESPONSE = ['cache-control', 'content-language', 'content-length', 'content-type', 'expires', 'last-modified', 'pragma'];

  // https://fetch.spec.whatwg.org/#cors-safelisted-request-header and the definitions it uses.
  // Values are byte strings: fetch() throws on a code unit above 0xFF, so a value's length in
  // code units is its length in bytes.
  var SAFELISTED_CONTENT_TYPES = ['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'];
  // https://fetch.spec.whatwg.org/#cors-unsafe-request-header-byte
  var CORS_UNSAFE_BYTE = /[\x00-\x08\x0a-\x1f"():<>?@[\\\]{}\x7f]/;
  var UNSAFE_BYTE_WHY = 'its value has a CORS-unsafe byte: a control, DEL or one of "():<>?@[\\]{}';
  var LANGUAGE_VALUE = /^[0-9A-Za-z *,\-.;=]*$/;
  var HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

  // The essence ("type/subtype", lowercase) of a MIME type, or null when it does not parse
  // (https://mimesniff.spec.whatwg.org/#parse-a-mime-type: parameters never make it fail).
  function mimeEssence(value) {
    var v = value.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
    var slash = v.indexOf('/');
    if (slash < 0) return null;
    var type = v.slice(0, slash);
    var subtype = v.slice(slash + 1).split(';')[0].replace(/[\t\n\r ]+$/, '');
    if (!HTTP_TOKEN.test(type) || !HTTP_TOKEN.test(subtype)) return null;
    return (type + '/' + subtype).toLowerCase();
  }

  // One `bytes=start-` or `bytes=start-end` range with start <= end
  // (https://fetch.spec.whatwg.org/#simple-range-header-value, without whitespace; a suffix
  // range such as bytes=-500 is not safelisted).
  function singleBytesRange(value) {
    var m = /^bytes=([0-9]+)-([0-9]*)$/.exec(value);
    if (!m) return false;
    if (m[2] === '') return true;
    // Compared as decimal strings: the digits may be more than a double holds.
    var start = m[1].replace(/^0+(?=.)/, '');
    var end = m[2].replace(/^0+(?=.)/, '');
    return start.length < end.length || (start.length === end.length && start <= end);
  }

  // Why (name, value) is not a CORS-safelisted request-header, or null when it is.
  function notSafelisted(name, value) {
    if (value.length > 128) return 'its value is longer than 128 bytes';
    switch (name) {
      case 'accept':
        return CORS_UNSAFE_BYTE.test(value) ? UNSAFE_BYTE_WHY : null;
      case 'accept-language':
      case 'content-language':
        return LANGUAGE_VALUE.test(value) ? null : 'its value has a byte other than 0-9 A-Z a-z space * , - . ; =';
      case 'content-type':
        if (CORS_UNSAFE_BYTE.test(value)) return UNSAFE_BYTE_WHY;
        return SAFELISTED_CONTENT_TYPES.indexOf(mimeEssence(value)) >= 0 ? null
          : 'only ' + SAFELISTED_CONTENT_TYPES.join(', ') + ' are safelisted';
      case 'range':
        return singleBytesRange(value) ? null : 'only a single bytes=start-[end] range is safelisted';
      default:
        return 'it is not a CORS-safelisted request header';
    }
  }

  // The first header a preflight would have to allow and the policy does not, with why, or
  // null (https://fetch.spec.whatwg.org/#cors-unsafe-request-header-names).
  function headerRefused(headers) {
    if (cfg.headers === null) return null; // allow_headers: mirror allows every name
    var unsafe = [];
    var safelisted = [];
    var size = 0;
    Object.keys(headers).sort().forEach(function (k) {
      var why = notSafelisted(k, headers[k]);
      if (why) {
        unsafe.push({ name: k, why: why });
      } else {
        safelisted.push(k);
        size += headers[k].length;
      }
    });
    // With one value per name the sum stays under 5 x 128 = 640 bytes; the rule is kept whole
    // so that it still holds if the bridge ever takes lists of (name, value) pairs.
    if (size > 1024) {
      safelisted.forEach(function (k) {
        unsafe.push({ name: k, why: 'the safelisted header values add up to more than 1024 bytes' });
      });
    }
    var bad = unsafe.filter(function (u) { return cfg.headers.indexOf(u.name) < 0; });
    if (!bad.length) return null;
    return bad[0].name + ': ' + headers[bad[0].name] + ' (' + bad[0].why + ', and allow_headers does not list it)';
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
    var badHeader = headerRefused(headers);
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
