from dmo.cli.main import run

run()
