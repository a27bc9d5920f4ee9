"""Small display helpers shared by the admin pages."""

from django.utils.html import format_html


def thumbnail(file_field, size: int = 96) -> str:
    if not file_field:
        return "-"
    return format_html('<img src="{}" style="max-width:{}px;max-height:{}px" alt="">', file_field.url, size, size)
