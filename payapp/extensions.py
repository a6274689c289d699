"""Flask extensions, created unbound here and bound to the app in create_app()."""

import flask
import flask_limiter
import flask_talisman
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect


class Talisman(flask_talisman.Talisman):
    """flask-talisman's headers, byte for byte, for less work on every response (a profile of
    /healthz found a third of payapp's own time here): a view's options are worked out once a
    request instead of four times, and the nonce is looked up once per policy, not per
    directive. The policy text is still built from the live policy each time."""

    def _get_local_options(self):
        request = flask.request._get_current_object()
        options = request.__dict__.get("_talisman_options")
        if options is None:
            options = request._talisman_options = super()._get_local_options()
        return options

    def _parse_policy(self, policy):
        if isinstance(policy, str):
            return super()._parse_policy(policy)
        nonce = getattr(flask.request, "csp_nonce", None)
        nonce_in = self._get_local_options()["content_security_policy_nonce_in"] or ()
        parts = []
        for section, content in policy.items():
            part = f"{section} {content if isinstance(content, str) else ' '.join(content)}"
            if nonce is not None and section in nonce_in:
                part += f" 'nonce-{nonce}'"
            parts.append(part)
        return "; ".join(parts)


class Limiter(flask_limiter.Limiter):
    """flask-limiter, doing nothing when it is disabled (RATELIMIT_ENABLED=false). Stock, every
    route decorated with a limit still worked out its limits on each request and found every one
    exempt (a twentieth of the open pay page in a profile, issue 10). Enabled, it is unchanged."""

    def _check_request_limit(self, callable_name=None, in_middleware=True):
        if not (self.enabled and self.initialized):
            return None
        return super()._check_request_limit(
            callable_name=callable_name, in_middleware=in_middleware
        )


csrf = CSRFProtect()
talisman = Talisman()
# No default limits: each sensitive route names its own (see security.py and the views).
limiter = Limiter(key_func=get_remote_address, default_limits=[])
# Staff login sessions; configured by views/guards.py.
login_manager = LoginManager()
