"""Raters: entry and admission, the assignment engine that picks their next pair, answers, the rater pages."""
