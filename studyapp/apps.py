from django.apps import AppConfig


class StudyAppConfig(AppConfig):
    name = "studyapp"
    verbose_name = "Human evaluation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from studyapp import checks  # noqa: F401  (registers system checks)
        from studyapp.studies import freeze

        freeze.connect()
