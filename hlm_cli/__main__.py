from hlm_cli.cli.app import run

run()
