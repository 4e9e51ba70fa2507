from posdiag.cli import main

raise SystemExit(main())
