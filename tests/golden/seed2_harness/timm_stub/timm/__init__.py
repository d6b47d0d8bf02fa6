# Minimal stand-in for the few timm names the reference SEED code imports (timm cannot be
# installed beside torch 2.13 CPU here). Only used for golden-data generation.
