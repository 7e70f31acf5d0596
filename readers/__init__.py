"""Reading the files users hand kic: the study's CSV, lists of accounts (pure: they take paths and
return frames, or land an import where they are told; they read no settings)."""
