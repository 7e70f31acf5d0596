from kic.cli import app

app(prog_name="kic")
