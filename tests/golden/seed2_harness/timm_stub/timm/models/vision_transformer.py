def _cfg(**kw):
    return kw
class PatchEmbed:  # imported by the reference vit.py, never used by Block
    pass
