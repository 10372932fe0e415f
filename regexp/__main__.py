from regexp.cli import main

main()
