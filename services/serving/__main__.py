from services.serving.app import main

main()
