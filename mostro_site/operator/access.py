"""Who is an operator: a superuser or a member of the "operator" group.

Solvers (groups "solver read" / "solver read-write") work disputes but must not change the
node's money rules, so they get a 403 here, not a login page.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

OPERATOR_GROUP = "operator"


def is_operator(user) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or user.groups.filter(name=OPERATOR_GROUP).exists()


def operator_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_operator(request.user):
            raise PermissionDenied("Operators only.")
        return view(request, *args, **kwargs)

    return wrapper


def ensure_operator_group(**kwargs) -> None:
    """post_migrate receiver. get_or_create, because a disputes migration may create it too."""
    from django.contrib.auth.models import Group

    Group.objects.get_or_create(name=OPERATOR_GROUP)
