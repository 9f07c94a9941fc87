"""The operator pages' gate: superusers and members of the "operator" group (`mostro_site.staff`).

Solvers (groups "solver read" / "solver read-write") work disputes but must not change the
node's money rules, so they get a 403 here, not a login page.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

from mostro_site.staff import OPERATOR_GROUP, is_operator

__all__ = ["OPERATOR_GROUP", "is_operator", "operator_required"]


def operator_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_operator(request.user):
            raise PermissionDenied("Operators only.")
        return view(request, *args, **kwargs)

    return wrapper
