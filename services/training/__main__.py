from services.training.app import main

main()
