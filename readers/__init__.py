"""Reading the files users hand kic: the study's CSV, lists of accounts. They take paths and
return frames, or land an import where they are told; they read no settings."""
