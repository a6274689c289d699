"""Flask extensions, created unbound here and bound to the app in create_app()."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
talisman = Talisman()
# No default limits: each sensitive route names its own (see security.py and the views).
limiter = Limiter(key_func=get_remote_address, default_limits=[])
# Staff login sessions; configured by views/guards.py.
login_manager = LoginManager()
