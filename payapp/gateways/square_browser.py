"""Square's Web Payments SDK as the patient's browser meets it: the script's address and every
host it talks to, per environment (from Square's Web Payments SDK guidance on CSP).

The one source for both the pay page (which loads the script) and the Content-Security-Policy
(which must admit exactly these hosts); no SDK import, so security.py stays light.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SquareBrowserHosts:
    web: str  # serves the SDK script, its styles and images, and the card-field frame
    api: str
    pci: str

    @property
    def sdk_url(self) -> str:
        return f"{self.web}/v1/square.js"


HOSTS = {
    "sandbox": SquareBrowserHosts(
        web="https://sandbox.web.squarecdn.com",
        api="https://connect.squareupsandbox.com",
        pci="https://pci-connect.squareupsandbox.com",
    ),
    "production": SquareBrowserHosts(
        web="https://web.squarecdn.com",
        api="https://connect.squareup.com",
        pci="https://pci-connect.squareup.com",
    ),
}
# The SDK reports its own errors here and loads its fonts from these, in both environments.
ERROR_REPORTING = "https://o160250.ingest.sentry.io"
FONTS = ("https://square-fonts-production-f.squarecdn.com", "https://d1g145x70srn7h.cloudfront.net")

# Google Pay: Square's payments.googlePay() loads Google's pay.js from this host, which then talks
# to it (Google Pay API for web docs: <script src="https://pay.google.com/gp/p/js/pay.js">). Its
# sheet opens from the pay page itself through the Payment Request API, so the page's
# `payment=(self ...)` covers it; Apple Pay (ApplePaySession) runs in the page itself and needs no
# host of its own. Same host in both environments.
GOOGLE_PAY = "https://pay.google.com"

BROWSER_SDK = {env: hosts.sdk_url for env, hosts in HOSTS.items()}
