"""Reference solutions of the code exercises, one module per chapter (`ch03.py`, ...).

The pages include them, folded, under each exercise; `snippets.exercises` tests them with
the same cases as a reader's solution.
"""
