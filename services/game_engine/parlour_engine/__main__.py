from parlour_engine.main import main

main()
