"""A procedural world of shapes in scenes, with models trained on it, for offline demos and tests.

``render`` draws pictures, ``captions`` describes them, ``data`` makes seeded sets and the subjects'
reference photos, ``train`` trains the text-to-image pipeline, CLIP, DINO and the judge, ``judge``
reads pictures, and the shipped weights are in ``models/`` (``paths``).
"""
