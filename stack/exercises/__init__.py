"""Build-it-yourself mode: students replace parts of the stack (seams) and a checker grades them.

``tunstack exercise list | start N DIR | check N [DIR]``; see docs/exercises.md.
The stack never imports this package: with no student part loaded, it runs untouched.
"""
