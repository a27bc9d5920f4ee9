"""What a study is made of: concepts and their reference photos, prompt sets, methods, and imports."""
