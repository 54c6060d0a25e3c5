// crossgate postMessage bridge: the page side.
//
//   <script src="https://api.example.com/_crossgate/bridge/crossgate-bridge.js"></script>
//   const bridge = await CrossgateBridge.connect();   // or connect("https://api.example.com/_crossgate/bridge")
//   const res = await bridge.fetch("/api/users", { method: "GET", headers: {}, body: null });
//   // res: { status, statusText, ok, headers: { name: value }, body: "text" }
//
// The bridge page answers only pages whose origin is in its allow_origins.
(function (global) {
  'use strict';
  var script = document.currentScript && document.currentScript.src;

  function connect(bridgeUrl, options) {
    var timeoutMs = (options && options.timeoutMs) || 10000;
    var requestTimeoutMs = (options && options.requestTimeoutMs) || 60000;
    var url = new URL(bridgeUrl || String(script).replace(/\/crossgate-bridge\.js(\?.*)?$/, ''), location.href);
    var origin = url.origin;
    return new Promise(function (resolve, reject) {
      var iframe = document.createElement('iframe');
      iframe.style.display = 'none';
      iframe.setAttribute('aria-hidden', 'true');
      iframe.src = url.href;
      var pending = {};
      var nextId = 1;
      var ready = false;
      var bridge = {
        fetch: function (path, init) {
          return new Promise(function (res, rej) {
            var id = nextId++;
            pending[id] = { resolve: res, reject: rej };
            setTimeout(function () {
              if (pending[id]) {
                delete pending[id];
                rej(new Error('crossgate bridge: no answer within ' + requestTimeoutMs + ' ms'));
              }
            }, requestTimeoutMs);
            iframe.contentWindow.postMessage({ crossgate: 1, id: id, path: String(path), init: init || {} }, origin);
          });
        },
        close: function () {
          window.removeEventListener('message', onMessage);
          iframe.remove();
        }
      };
      function onMessage(ev) {
        if (ev.source !== iframe.contentWindow || ev.origin !== origin) return;
        var m = ev.data;
        if (!m || m.crossgate !== 1) return;
        if (m.type === 'ready') {
          ready = true;
          resolve(bridge);
          return;
        }
        var p = pending[m.id];
        if (!p) return;
        delete pending[m.id];
        if (m.error) p.reject(new Error(m.error));
        else p.resolve(m.response);
      }
      window.addEventListener('message', onMessage);
      iframe.addEventListener('load', function () {
        iframe.contentWindow.postMessage({ crossgate: 1, id: 0, type: 'hello' }, origin);
      });
      setTimeout(function () {
        if (!ready) {
          bridge.close();
          reject(new Error('crossgate bridge at ' + url.href + ' did not answer: is ' + location.origin + ' in its allow_origins?'));
        }
      }, timeoutMs);
      (document.body || document.documentElement).appendChild(iframe);
    });
  }

  global.CrossgateBridge = { connect: connect };
})(window);
