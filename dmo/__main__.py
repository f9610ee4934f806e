from dmo.cli.main import main

main()
