// Staff and patient pages: CSRF header for htmx requests, and the copy button. No inline code
// anywhere (strict CSP), so behaviour lives in listeners here.
(function () {
  'use strict';

  // htmx posts from forms already carry csrf_token; this covers requests made from other elements.
  document.addEventListener('htmx:configRequest', function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) event.detail.headers['X-CSRFToken'] = meta.content;
  });

  document.addEventListener('click', function (event) {
    var button = event.target.closest('[data-copy]');
    if (!button) return;
    var input = document.querySelector(button.getAttribute('data-copy'));
    var status = document.getElementById('copy-status');
    if (!input) return;
    function done(message) { if (status) status.textContent = message; }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(
        function () { done('Link copied.'); },
        function () { input.select(); done('Press Ctrl+C (or ⌘C) to copy.'); }
      );
    } else {
      input.select();
      done('Press Ctrl+C (or ⌘C) to copy.');
    }
  });
})();
