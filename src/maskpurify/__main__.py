import sys

from maskpurify.cli import main

sys.exit(main())
