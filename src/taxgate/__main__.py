from taxgate.cli import main

main()
