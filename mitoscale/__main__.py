from mitoscale.cli import main

raise SystemExit(main())
