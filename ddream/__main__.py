"""`python -m ddream` runs the command-line tool."""

from ddream.cli import main

if __name__ == "__main__":
    main()
