"""The API's one permission class: staff, plus the model permissions each view names per method."""

from rest_framework.permissions import BasePermission

from studyapp.staff import missing_permissions, permission_refusal

READ_METHODS = ("GET", "HEAD", "OPTIONS")


class StaffModelPermissions(BasePermission):
    """A view lists ``required_permissions = {"GET": [...], "POST": [...]}``; HEAD and OPTIONS need what
    GET needs. A method the view does not list is refused, so a new view is closed until it says."""

    message = "Staff only."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return False
        required = getattr(view, "required_permissions", {})
        method = "GET" if request.method in READ_METHODS else request.method
        if method not in required:
            # A method the view does not serve gets DRF's 405; one it serves but does not list, a 403.
            self.message = f"{request.method} needs a permission this view does not declare."
            return not hasattr(view, request.method.lower())
        missing = missing_permissions(user, required[method])
        if missing:
            self.message = permission_refusal(missing)
            return False
        return True
