from generation.cli import main

raise SystemExit(main())
