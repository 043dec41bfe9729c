from __future__ import annotations

from parlour_gateway.main import main

main()
