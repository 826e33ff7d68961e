from services.deadletters.app import main

main()
