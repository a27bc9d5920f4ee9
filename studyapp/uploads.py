"""An upload handler that enforces the size limits while the request is read, never after.

Django's own limit (DATA_UPLOAD_MAX_MEMORY_SIZE) leaves file parts out; this handler refuses a
request whose declared length is above MAX_UPLOAD_REQUEST_BYTES before reading any of it, and stops
a file part as soon as more than MAX_UPLOAD_BYTES of it has arrived. Either refusal is a 400.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler


class SizeCapUploadHandler(FileUploadHandler):
    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > settings.MAX_UPLOAD_REQUEST_BYTES:
            limit = settings.MAX_UPLOAD_REQUEST_BYTES
            raise RequestDataTooBig(f"the upload is {content_length:,} bytes, the limit is {limit:,} per request")

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.MAX_UPLOAD_BYTES:
            limit = settings.MAX_UPLOAD_BYTES
            raise RequestDataTooBig(f"{self.file_name}: more than {limit:,} bytes, the limit is {limit:,} per file")
        return raw_data  # the next handler stores the chunk

    def file_complete(self, file_size):
        return None  # the next handler returns the stored file
