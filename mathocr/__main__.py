from mathocr.cli import main

raise SystemExit(main())
