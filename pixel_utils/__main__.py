from pixel_utils.app.cli import main

raise SystemExit(main())
