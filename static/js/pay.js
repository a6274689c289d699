// The patient's card form. Square's Web Payments SDK (or, in demo mode, the local stand-in with
// the same shape) tokenizes the card in the browser; we post only the token, the ZIP code and the
// attempt key. The form is outside #pay-result, so the card field survives every htmx swap.
(function () {
  'use strict';

  var form = document.getElementById('pay-form');
  if (!form) return;
  var button = document.getElementById('pay-button');
  var errors = document.getElementById('card-errors');
  var card = null;
  var busy = false;

  function showError(message) { errors.textContent = message || ''; }
  // The page's own words (data-words-* on the form, in the patient's language); English fallback.
  function words(name, english) { return form.dataset['words' + name] || english; }

  // Square's buyer verification (3-D Secure) works with the given name and the ZIP the card field
  // collects; the page carries nothing more (anyone holding the link can read its source).
  function billingContact() {
    var contact = {};
    if (form.dataset.givenName) contact.givenName = form.dataset.givenName;
    return contact;
  }

  // Paying part now: the amount the patient chose, for Square's buyer verification; the server
  // decides and checks what is charged (the form posts the choice, never a trusted amount).
  function choseOther() {
    var checked = form.querySelector('input[name="pay_choice"]:checked');
    return !!checked && checked.value === 'other';
  }

  function chosenAmount() {
    if (choseOther()) {
      var typed = (form.elements.other_amount.value || '').replace(/[$,\s]/g, '');
      if (/^\d{1,9}(\.\d{1,2})?$/.test(typed)) return Number(typed).toFixed(2);
    }
    return form.dataset.amount;
  }

  function setBusy(value) {
    busy = value;
    button.disabled = value || !card;
    form.setAttribute('aria-busy', value ? 'true' : 'false');
  }

  async function start() {
    var sdk = window.Square || window.PayappDemoSquare;
    if (!sdk) throw new Error('card SDK missing');
    var payments = sdk.payments(form.dataset.appId, form.dataset.locationId);
    // Square's card field speaks the page's language (es-US / en-US), not the browser's.
    if (payments.setLocale && form.dataset.locale) {
      try { await payments.setLocale(form.dataset.locale); } catch (err) { /* keep Square's own */ }
    }
    card = await payments.card();
    var loading = document.getElementById('card-loading');
    if (loading) loading.remove();
    await card.attach('#card-container');
    button.disabled = false;
    await startWallets(payments);
  }

  // Apple Pay / Google Pay above the card field, only where the device supports them: Square's
  // applePay()/googlePay() reject where unsupported, and the button then stays hidden. A wallet's
  // token is posted like a card token (same form, same attempt key, same charge path).
  function payWith(wallet, kind) {
    return async function () {
      if (busy || !card) return;
      // A wallet's sheet shows the full balance it was set up with: another amount is by card.
      if (choseOther()) { showError(form.dataset.walletFullOnly || ''); return; }
      setBusy(true);
      showError('');
      try {
        var result = await wallet.tokenize();
        if (result.status !== 'OK') { setBusy(false); return; } // the patient closed the sheet
        form.elements.source_id.value = result.token;
        form.elements.wallet.value = kind; // only names the wallet on the receipt
        var billing = result.details && result.details.billing;
        form.elements.postal_code.value = (billing && billing.postalCode) || '';
        window.htmx.trigger(form, 'card-tokenized');
      } catch (err) {
        showError(words('Wallet', 'The wallet payment did not start. Please try again or use your card.'));
        setBusy(false);
      }
    };
  }

  async function startWallets(payments) {
    var box = document.getElementById('wallet-buttons');
    if (!box || !payments.paymentRequest) return;
    var request = payments.paymentRequest({
      countryCode: 'US',
      currencyCode: form.dataset.currency,
      total: { amount: form.dataset.amount, label: 'Total' }
    });
    var found = [
      ['apple-pay-button', 'applePay', 'apple_pay'],
      ['google-pay-button', 'googlePay', 'google_pay']
    ];
    for (var i = 0; i < found.length; i++) {
      var el = document.getElementById(found[i][0]);
      try {
        var wallet = await payments[found[i][1]](request);
        if (found[i][1] === 'googlePay') await wallet.attach('#' + found[i][0]);
        if (wallet.demoLabel && el.tagName === 'BUTTON') el.textContent = el.dataset.demoLabel || wallet.demoLabel;
        el.addEventListener('click', payWith(wallet, found[i][2]));
        el.hidden = false;
        box.hidden = false;
      } catch (err) { /* not supported here: keep it hidden */ }
    }
  }

  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    if (busy || !card) return;
    setBusy(true);
    showError('');
    try {
      var result = await card.tokenize({
        amount: chosenAmount(),
        currencyCode: form.dataset.currency,
        intent: 'CHARGE',
        billingContact: billingContact(),
        customerInitiated: true,
        sellerKeyedIn: false
      });
      if (result.status !== 'OK') {
        var first = result.errors && result.errors[0];
        showError(first && first.message ? first.message : words('Check', 'Check your card details and try again.'));
        setBusy(false);
        return;
      }
      form.elements.source_id.value = result.token;
      form.elements.wallet.value = '';
      var billing = result.details && result.details.billing;
      form.elements.postal_code.value = (billing && billing.postalCode) || '';
      // hx-trigger="card-tokenized": htmx posts the form and swaps the answer into #pay-result.
      window.htmx.trigger(form, 'card-tokenized');
    } catch (err) {
      showError(words('Card', 'Something went wrong reading your card. Please try again.'));
      setBusy(false);
    }
  });

  document.body.addEventListener('htmx:afterRequest', function (event) {
    if (event.detail.elt !== form) return;
    form.elements.source_id.value = ''; // a card token is single-use
    form.elements.wallet.value = '';
    setBusy(false);
    if (!event.detail.successful && !event.detail.xhr.responseText) {
      showError(words('Offline', 'We could not reach the clinic\'s payment page. Check your connection and try again.'));
    }
  });

  // One message at a time: an answer to this form (a result, or an error such as "Too many
  // attempts" that the server retargets to #flash) replaces whatever either region showed.
  document.body.addEventListener('htmx:beforeSwap', function (event) {
    var config = event.detail.requestConfig; // the event fires on the target, not the form
    if (!config || config.elt !== form || !event.detail.shouldSwap) return;
    ['flash', 'pay-result'].forEach(function (id) {
      var region = document.getElementById(id);
      if (region) region.textContent = '';
    });
  });

  document.body.addEventListener('htmx:oobBeforeSwap', function (event) {
    // The form section is being replaced (paid, locked or confirming): release the card field.
    if (event.detail.target && event.detail.target.id === 'pay-form-section' && card) {
      card.destroy();
      card = null;
    }
  });

  document.body.addEventListener('htmx:afterSwap', function (event) {
    if (event.detail.target && event.detail.target.id === 'pay-result') {
      var receipt = event.detail.target.querySelector('.receipt, .alert');
      if (receipt) { receipt.setAttribute('tabindex', '-1'); receipt.focus(); }
    }
  });

  start().catch(function () {
    showError('The secure card field could not load. Reload the page, or call the clinic to pay by phone.');
  });
})();
