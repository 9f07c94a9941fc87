"""First-start chores of the embedded default node: a Mostro key and an operator login.

The login is printed exactly once: a marker file in the var directory remembers that it was
shown (it holds no secret), so restarts never reprint or reset the password.
"""

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from mostro_site.staff import OPERATOR_GROUP

OPERATOR_USERNAME = "operator"
LOGIN_MARKER = "operator-login-shown"


def ensure_operator_login(var_dir: Path) -> str:
    """Create the operator login if it does not exist; return the lines to show.

    The password appears only in the answer of the call that created the user.
    """
    marker = var_dir / LOGIN_MARKER
    password = secrets.token_urlsafe(12)
    created = _create_operator(password)
    shown_before = marker.exists()
    marker.write_text("The operator login was printed when it was created; the password is not stored here.\n")
    if created:
        return (
            f"Operator login (shown only this once, keep it):\n  username: {OPERATOR_USERNAME}\n  password: {password}"
        )
    if shown_before:
        return (
            f"Operator login: '{OPERATOR_USERNAME}' (password shown at first start; "
            f"reset it with `manage.py changepassword {OPERATOR_USERNAME}`)."
        )
    return f"Operator login: the user '{OPERATOR_USERNAME}' already exists; its password was left unchanged."


@transaction.atomic
def _create_operator(password: str) -> bool:
    User = get_user_model()
    if User.objects.filter(username=OPERATOR_USERNAME).exists():
        return False
    user = User.objects.create_superuser(username=OPERATOR_USERNAME, email="", password=password)
    group, _ = Group.objects.get_or_create(name=OPERATOR_GROUP)
    user.groups.add(group)
    return True
