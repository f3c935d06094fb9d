"""The LLM teacher and teacher files.

Submodules are imported on demand: ``teacher.file`` (the teacher file the student reads) must stay
light, while ``backbone``/``model``/``train`` pull in transformers and peft.
"""
