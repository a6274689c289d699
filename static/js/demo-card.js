/*
 * Demo-mode stand-in for Square's Web Payments SDK card field, used only when
 * the site has no Square keys. Same JS shape as the SDK (payments() -> card()
 * -> attach/tokenize/destroy) so pay.js can use `window.Square ||
 * window.PayappDemoSquare` unchanged. No network; only Square's sandbox test
 * cards are accepted (mapped to Square's sandbox test nonces), so a real card
 * can never appear to succeed. CSP-safe: no inline styles, no eval, DOM built
 * with createElement/textContent. Inputs have no `name`, so the surrounding
 * form never posts card data, only the token pay.js adds.
 */
(function () {
  'use strict';

  // Square sandbox test cards: number -> brand and CVV length (0 = no CVV).
  var TEST_CARDS = {
    '4111111111111111': { brand: 'VISA', cvv: 3 },
    '5105105105105100': { brand: 'MASTERCARD', cvv: 3 },
    '6011000000000004': { brand: 'DISCOVER', cvv: 3 },
    '30000000000004': { brand: 'DISCOVER_DINERS', cvv: 3 },
    '3569990010095841': { brand: 'JCB', cvv: 3 },
    '340000000000009': { brand: 'AMERICAN_EXPRESS', cvv: 4 },
    '6222988812340000': { brand: 'CHINA_UNIONPAY', cvv: 3 },
    '7783320000000000': { brand: 'SQUARE_GIFT_CARD', cvv: 0 },
    '4000000000000002': { brand: 'VISA', cvv: 3 } // Square's "declined" card
  };
  var DECLINED_CARD = '4000000000000002';
  var GIFT_CARD = '7783320000000000';
  var DEMO_APP_ID = 'demo-app'; // payapp/views/pay.py page_context()
  var NOTE = 'Demo mode: use a Square test card such as 4111 1111 1111 1111, ' +
    'any future expiry, CVV 111.';
  // The page's words for this field, in the patient's language: a JSON object (English -> shown)
  // in the card container's data-demo-words, rendered by the server. Missing: English.
  var WORDS = {};
  function t(english) { return Object.prototype.hasOwnProperty.call(WORDS, english) ? WORDS[english] : english; }
  function readWords(container) {
    try { WORDS = JSON.parse(container.dataset.demoWords || '{}') || {}; } catch (e) { WORDS = {}; }
  }
  function notReady() {
    return { status: 'Error', errors: [{ type: 'UNKNOWN', message: t('Card field is not ready.') }] };
  }

  // key -> [input id suffix, label text, autocomplete, inputmode, maxlength, hint]
  // The three short fields share a row, so each has the same label + hint lines: their inputs
  // line up. The hint sits outside the <label>, so the label text stays e.g. "Expiration".
  var FIELDS = {
    cardNumber: ['number', 'Card number', 'cc-number', 'numeric', 23, ''],
    expirationDate: ['expiration', 'Expiration', 'cc-exp', 'numeric', 7, 'MM/YY'],
    cvv: ['cvv', 'CVV', 'cc-csc', 'numeric', 4, '3 or 4 digits'],
    postalCode: ['postal', 'ZIP code', 'postal-code', 'text', 10, '5 digits']
  };
  var ORDER = ['cardNumber', 'expirationDate', 'cvv', 'postalCode'];
  function hintId(key) { return FIELDS[key][5] ? 'demo-card-' + FIELDS[key][0] + '-hint' : ''; }

  function digitsOf(s) { return String(s).replace(/\D/g, ''); }

  function luhnOk(num) {
    var sum = 0;
    for (var i = 0; i < num.length; i++) {
      var d = Number(num.charAt(num.length - 1 - i));
      if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
      sum += d;
    }
    return sum % 10 === 0;
  }

  function groupCard(digits) {
    return digits.slice(0, 19).replace(/(\d{4})(?=\d)/g, '$1 ');
  }

  function formatExpiry(digits, deleting) {
    digits = digits.slice(0, 4);
    if (digits.length > 2) return digits.slice(0, 2) + '/' + digits.slice(2);
    // Auto-insert the slash after the month, but not while backspacing over it.
    if (digits.length === 2 && !deleting) return digits + '/';
    return digits;
  }

  // Reformat an input's value, keeping the caret after the same number of
  // digits it was after before (simple, but sane for typing and deleting).
  function reformat(input, format, deleting) {
    var caret = input.selectionStart === null ? input.value.length : input.selectionStart;
    var atEnd = caret === input.value.length;
    var before = digitsOf(input.value.slice(0, caret)).length;
    var next = format(digitsOf(input.value), deleting);
    if (next === input.value) return;
    input.value = next;
    var pos = next.length;
    if (!atEnd) {
      for (pos = 0; pos < next.length && before > 0; pos++) {
        if (/\d/.test(next.charAt(pos))) before--;
      }
    }
    input.setSelectionRange(pos, pos);
  }

  function validate(v, namesCard) {
    var errors = [];
    function fail(field, message) {
      errors.push({ type: 'VALIDATION_ERROR', field: field, message: message });
    }
    var number = v.cardNumber.replace(/[\s-]/g, '');
    var card = TEST_CARDS[number] || null;
    if (!card) {
      // Real (Luhn-valid) cards get a distinct message: demo must never accept them.
      fail('cardNumber', /^\d{13,19}$/.test(number) && luhnOk(number)
        ? t('Demo mode accepts only Square test cards, e.g. 4111 1111 1111 1111.')
        : t('Enter a valid card number.'));
    }

    var exp = /^(\d{2})\s*\/?\s*(\d{2})$/.exec(v.expirationDate.trim());
    var month = exp ? Number(exp[1]) : 0;
    var year = exp ? 2000 + Number(exp[2]) : 0;
    var now = new Date();
    if (!exp || month < 1 || month > 12) fail('expirationDate', t('Enter the expiry date as MM/YY.'));
    else if (year * 12 + month < now.getFullYear() * 12 + now.getMonth() + 1) {
      fail('expirationDate', t('This card has expired.'));
    }

    // Amex needs 4 digits; gift cards need none. Unknown numbers default to 3.
    var cvvLen = card ? card.cvv : (/^3[47]/.test(number) ? 4 : 3);
    if (cvvLen && !new RegExp('^\\d{' + cvvLen + '}$').test(v.cvv.trim())) {
      fail('cvv', cvvLen === 4 ? t('Enter the 4-digit security code.') : t('Enter the 3-digit security code.'));
    }

    var zip = v.postalCode.trim();
    if (!/^\d{5}(-\d{4})?$/.test(zip)) fail('postalCode', t('Enter your 5-digit ZIP code.'));

    if (errors.length) return { status: 'Invalid', errors: errors };

    // Square's sandbox nonces; first match wins, in the documented order.
    var token = 'cnon:card-nonce-ok';
    if (number === DECLINED_CARD) token = 'cnon:card-nonce-declined';
    else if (cvvLen && v.cvv.trim() === '911') token = 'cnon:card-nonce-rejected-cvv';
    else if (zip.slice(0, 5) === '99999') token = 'cnon:card-nonce-rejected-postalcode';
    else if (month === 1 && year === 2040) token = 'cnon:card-nonce-rejected-expiration';
    else if (number === GIFT_CARD) token = 'cnon:gift-card-nonce-ok';
    // Like Square's sandbox, the demo gateway reports the card typed: brand and last 4 ride on
    // the nonce (never the number). As Square's stand-in (tests), only Square's own nonces.
    if (namesCard) token += '--' + card.brand + '--' + number.slice(-4);

    var details = {
      method: 'Card',
      card: { brand: card.brand, last4: number.slice(-4), expMonth: month, expYear: year },
      billing: { postalCode: zip }
    };
    return { status: 'OK', token: token, details: details };
  }

  function DemoCard(namesCard) {
    this._namesCard = namesCard; // true in demo mode: see validate()
    this._root = null;     // wrapper element we rendered, null when not attached
    this._inputs = null;   // field key -> input element
    this._listeners = [];  // [element, type, handler] for removal on destroy
  }

  DemoCard.prototype.attach = async function (target) {
    var container = typeof target === 'string' ? document.querySelector(target) : target;
    if (!container || container.nodeType !== 1) {
      throw new Error('Card container not found: ' + String(target));
    }
    if (this._root) throw new Error('Card is already attached.');
    readWords(container);
    this._render(container);
  };

  DemoCard.prototype._listen = function (el, type, fn) {
    el.addEventListener(type, fn);
    this._listeners.push([el, type, fn]);
  };

  DemoCard.prototype._render = function (container) {
    var root = document.createElement('div');
    root.className = 'card-field';
    var row = document.createElement('div');
    row.className = 'card-row';
    var inputs = {};
    ORDER.forEach(function (key) {
      var f = FIELDS[key];
      var wrap = document.createElement('div');
      wrap.className = 'field';
      var label = document.createElement('label');
      label.htmlFor = 'demo-card-' + f[0];
      label.textContent = t(f[1]);
      var input = document.createElement('input');
      input.type = 'text';
      input.id = 'demo-card-' + f[0];
      input.setAttribute('autocomplete', f[2]);
      input.setAttribute('inputmode', f[3]);
      input.maxLength = f[4];
      input.spellcheck = false;
      wrap.appendChild(label);
      if (f[5]) {
        var hint = document.createElement('small');
        hint.id = hintId(key);
        hint.textContent = t(f[5]);
        wrap.appendChild(hint);
        input.setAttribute('aria-describedby', hint.id);
      }
      wrap.appendChild(input);
      inputs[key] = input;
      // Card number on its own line; the three short fields share a row.
      (key === 'cardNumber' ? root : row).appendChild(wrap);
    });
    root.appendChild(row);
    var note = document.createElement('p');
    note.className = 'demo-card-note';
    note.textContent = t(NOTE);
    root.appendChild(note);

    this._listen(inputs.cardNumber, 'input', function () {
      reformat(inputs.cardNumber, groupCard);
    });
    this._listen(inputs.expirationDate, 'input', function (e) {
      reformat(inputs.expirationDate, formatExpiry, /^delete/.test(e.inputType || ''));
    });

    while (container.firstChild) container.removeChild(container.firstChild);
    container.appendChild(root);
    this._root = root;
    this._inputs = inputs;
  };

  DemoCard.prototype._clearErrors = function () {
    var inputs = this._inputs;
    this._root.querySelectorAll('.field-error').forEach(function (el) { el.remove(); });
    ORDER.forEach(function (key) {
      var input = inputs[key];
      input.removeAttribute('aria-invalid');
      if (hintId(key)) input.setAttribute('aria-describedby', hintId(key));
      else input.removeAttribute('aria-describedby');
    });
  };

  DemoCard.prototype._showErrors = function (errors) {
    var inputs = this._inputs;
    errors.forEach(function (e) {
      var input = inputs[e.field];
      var err = document.createElement('p');
      err.className = 'field-error';
      err.id = input.id + '-error';
      err.textContent = e.message;
      input.insertAdjacentElement('afterend', err);
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', (hintId(e.field) + ' ' + err.id).trim());
    });
    if (errors.length) inputs[errors[0].field].focus();
  };

  // Like Square, resolves (never rejects) with a TokenResult.
  DemoCard.prototype.tokenize = async function (verificationDetails) {
    if (!this._root) return notReady();
    var inputs = this._inputs;
    var contact = verificationDetails && verificationDetails.billingContact;
    if (contact && contact.postalCode && !inputs.postalCode.value.trim()) {
      inputs.postalCode.value = String(contact.postalCode);
    }
    var values = {};
    ORDER.forEach(function (key) { values[key] = inputs[key].value; });
    this._clearErrors();
    var result = validate(values, this._namesCard);
    if (result.status === 'Invalid') this._showErrors(result.errors);
    return result;
  };

  DemoCard.prototype.destroy = async function () {
    this._listeners.forEach(function (l) { l[0].removeEventListener(l[1], l[2]); });
    this._listeners = [];
    if (this._root) this._root.remove();
    this._root = null;
    this._inputs = null;
    return true;
  };

  var WALLETS = {
    apple: ['Apple Pay (demo)', 'cnon:demo-apple-pay-ok'],
    google: ['Google Pay (demo)', 'cnon:demo-google-pay-ok']
  };

  function demoWallet(namesCard, kind, request) {
    if (!namesCard || !request || !request.total) throw new Error('Wallet not supported.');
    var w = WALLETS[kind];
    return {
      demoLabel: w[0],
      // Square's googlePay.attach() renders its button into the container; ours is a plain button.
      attach: async function (target) {
        var container = document.querySelector(target);
        var b = document.createElement('button');
        b.type = 'button';
        b.className = 'button wallet-button';
        b.textContent = container.dataset.demoLabel || w[0]; // the page's label, in its language
        container.appendChild(b);
      },
      tokenize: async function () {
        return { status: 'OK', token: w[1], details: { method: kind === 'apple' ? 'Apple Pay' : 'Google Pay' } };
      },
      destroy: async function () { return true; }
    };
  }

  window.PayappDemoSquare = {
    // Synchronous, like Square.payments(). The demo page passes DEMO_APP_ID; under any other id
    // this script is standing in for Square's SDK and its nonces must be Square's own.
    payments: function (applicationId, locationId) {
      var namesCard = applicationId === DEMO_APP_ID;
      return {
        card: async function () { return new DemoCard(namesCard); },
        paymentRequest: function (options) { return options; },
        // Demo wallets (demo mode only; under Square's id they reject like an unsupported device):
        // payapp's own demo wallet nonces, accepted by payapp/gateways/demo.py.
        applePay: async function (request) { return demoWallet(namesCard, 'apple', request); },
        googlePay: async function (request) { return demoWallet(namesCard, 'google', request); }
      };
    }
  };
})();
