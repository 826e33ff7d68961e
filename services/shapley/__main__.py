from services.shapley.app import main

main()
