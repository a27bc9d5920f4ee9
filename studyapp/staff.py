"""Staff pages outside the admin check the same model permissions as the admin does.

Anonymous visitors and raters are sent to the admin login; a staff account without the permission
gets a 403 that names it.
"""

from functools import wraps

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied


def missing_permissions(user, permissions) -> list[str]:
    return [name for name in permissions if not user.has_perm(name)]


def permission_refusal(missing: list[str]) -> str:
    return f"Your account lacks the permission {', '.join(missing)}; an administrator can grant it in the admin."


def staff_permission_required(*permissions: str):
    """A staff-only view that also needs every one of ``permissions`` ("studyapp.view_study", ...)."""

    def decorator(view):
        @wraps(view)
        def checked(request, *args, **kwargs):
            missing = missing_permissions(request.user, permissions)
            if missing:
                raise PermissionDenied(permission_refusal(missing))
            return view(request, *args, **kwargs)

        return staff_member_required(checked)

    return decorator
