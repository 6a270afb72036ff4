from pixel_utils.report.runner import main

raise SystemExit(main())
