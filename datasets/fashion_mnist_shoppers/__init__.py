"""fashion_mnist_shoppers: Fashion-MNIST products bought by simulated visual shoppers."""
