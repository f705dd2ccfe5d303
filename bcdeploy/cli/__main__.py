from bcdeploy.cli import main

main()
