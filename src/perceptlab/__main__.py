from perceptlab.cli import main

raise SystemExit(main())
