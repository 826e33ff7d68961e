from services.scoring.app import main

main()
