from kafscale.cli import main

raise SystemExit(main())
